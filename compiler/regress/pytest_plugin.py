"""pytest plugin (entry point ``pytest11``): the ``mcuc regress`` check inside a project's own
test suite.

``pytest --mcuc-baseline BASELINE.json --mcuc-board BOARD [--mcuc-sim SIM]`` adds one test item
per baseline record of BOARD, failing with the table of what regressed. The ``mcuc_regress``
fixture measures and compares models in custom tests::

    def test_my_model(mcuc_regress):
        rec = mcuc_regress.measure("models/kws.onnx")
        assert rec.arena_bytes < 20_000
        mcuc_regress.check(rec)        # fails on any regression against the baseline

Without ``--mcuc-baseline`` the plugin adds nothing and the fixture's ``check`` skips.
"""

from __future__ import annotations

from pathlib import Path

import pytest


def pytest_addoption(parser):
    g = parser.getgroup("mcuc", "mcuc firmware regression")
    g.addoption("--mcuc-baseline", metavar="BASELINE.json", default=None,
                help="add one test per model the mcuc baseline records for --mcuc-board")
    g.addoption("--mcuc-board", metavar="BOARD", default=None, help="board of the mcuc regression tests")
    g.addoption("--mcuc-sim", metavar="SIM", default="auto", help="simulator for firmware boards (default auto)")


def _line(d) -> str:
    tol = f" (tolerance {d.tolerance})" if d.tolerance else ""
    return f"{d.status}: {d.metric}: {d.baseline} -> {d.measured}: {d.change}{tol}"


class McucRegressionFailure(Exception):
    pass


class McucRegressItem(pytest.Item):
    def __init__(self, *, job, baseline, **kw):
        super().__init__(**kw)
        self.job = job
        self.baseline = baseline
        self.add_marker("mcuc_regress")

    def runtest(self):
        from .compare import compare, error_delta
        from .measure import measure_safely
        from .schema import record_key

        _, rec, err = measure_safely(self.job)
        key = record_key(self.job.name, rec.board if rec else self.job.board)
        ds = [error_delta(key, err)] if rec is None else \
            compare(self.baseline.records.get(key), rec, self.baseline.tolerances_for(key))
        bad = [d for d in ds if d.failing]
        for d in ds:
            self.user_properties.append((d.metric, f"{d.status}: {d.baseline} -> {d.measured}"))
        if bad:
            raise McucRegressionFailure("\n".join(_line(d) for d in bad))

    def repr_failure(self, excinfo):
        if isinstance(excinfo.value, McucRegressionFailure):
            return f"mcuc regression in {self.name}:\n{excinfo.value}"
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, None, f"mcuc regress: {self.name}"


class McucBaselineFile(pytest.File):
    def collect(self):
        from .run import plan_jobs
        from .schema import load

        config = self.config
        base = load(self.path)
        board = config.getoption("mcuc_board")
        for job in plan_jobs(self.path, base, [], board, sim=config.getoption("mcuc_sim")):
            yield McucRegressItem.from_parent(self, name=f"{job.name}@{board}", job=job, baseline=base)


def pytest_configure(config):
    config.addinivalue_line("markers", "mcuc_regress: an mcuc firmware regression check from --mcuc-baseline")
    if config.getoption("mcuc_baseline") and not config.getoption("mcuc_board"):
        raise pytest.UsageError("--mcuc-baseline needs --mcuc-board")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session, config, items):
    path = config.getoption("mcuc_baseline")
    if not path:
        return
    from ..errors import McucError

    p = Path(path).resolve()
    try:
        f = McucBaselineFile.from_parent(session, path=p)
        items.extend(f.collect())
    except McucError as e:
        raise pytest.UsageError(f"--mcuc-baseline: {e}") from None


class Regress:
    """What the ``mcuc_regress`` fixture gives a test."""

    def __init__(self, config):
        self.config = config
        path = config.getoption("mcuc_baseline")
        self.baseline_path = Path(path) if path else None
        self.board = config.getoption("mcuc_board")
        self.sim = config.getoption("mcuc_sim")
        self._baseline = None

    @property
    def baseline(self):
        from .schema import load

        if self.baseline_path is None:
            pytest.skip("no --mcuc-baseline given")
        if self._baseline is None:
            self._baseline = load(self.baseline_path)
        return self._baseline

    def measure(self, model, *, board: str | None = None, sim: str | None = None, inputs: str | None = None,
                samples: int = 4):
        """Compile, build and run ``model``: a schema.Record (McucError when it cannot run)."""
        from .measure import Job, measure

        board = board or self.board
        if board is None:
            pytest.skip("no board: pass board= or --mcuc-board")
        return measure(Job(str(model), board, sim=sim or self.sim, inputs=inputs, samples=samples))

    def compare(self, record):
        from .compare import compare

        return compare(self.baseline.records.get(record.key), record, self.baseline.tolerances_for(record.key))

    def check(self, record) -> None:
        bad = [d for d in self.compare(record) if d.failing]
        if bad:
            pytest.fail(f"mcuc regression in {record.key}:\n" + "\n".join(_line(d) for d in bad), pytrace=False)


@pytest.fixture
def mcuc_regress(request):
    return Regress(request.config)
