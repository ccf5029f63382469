"""``mcuc regress``: measure many models (in parallel worker processes, with a progress bar),
compare each with its baseline record, print what moved, write JUnit XML, update the baseline.
"""

from __future__ import annotations

import datetime
import os
import platform
import shutil
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from .. import __version__
from ..errors import McucError
from . import schema
from .compare import FAILING, Delta, compare, error_delta
from .measure import Job, measure_safely
from .schema import Baseline, CompileOptions, Record, Recorded, record_key


@dataclass
class Outcome:
    job: Job
    record: Record | None
    error: str | None
    seconds: float
    deltas: list[Delta] = field(default_factory=list)

    @property
    def key(self) -> str:
        return record_key(self.job.name, self.record.board if self.record else self.job.board)

    @property
    def failing(self) -> bool:
        return any(d.failing for d in self.deltas)


def _rel_path(model: Path, base_dir: Path) -> str:
    try:
        return os.path.relpath(model.resolve(), base_dir.resolve())
    except ValueError:  # another drive
        return str(model.resolve())


def plan_jobs(baseline_path, baseline: Baseline, models: list[str], board: str, *, sim: str = "auto",
              inputs: str | None = None, samples: int = 4, timeout: float = 600,
              options: CompileOptions | None = None) -> list[Job]:
    """The jobs of one ``mcuc regress`` call: the models named, else every baseline record of
    ``board`` (paths relative to the baseline file). Compile options: ``options`` when given,
    else those the model's record was compiled with, else the defaults."""
    from ..boards import load_board

    b = load_board(board)
    base_dir = Path(baseline_path).parent
    if models:
        paths = [Path(m) for m in models]
    else:
        recs = [r for r in baseline.records.values() if r.board == b.qualified]
        if not recs:
            raise McucError(f"the baseline has no records for board {b.qualified}: name the models to run",
                            where=str(baseline_path))
        paths = []
        for r in recs:
            if r.path is None:
                raise McucError(f"record {r.key} stores no model path: name the models to run", where=str(baseline_path))
            paths.append(base_dir / r.path)
    names = [p.stem for p in paths]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise McucError(f"two models share the name {dup[0]!r}: records are keyed by file name")
    for p in paths:
        if not p.is_file():
            raise McucError("no such model file", where=str(p))
    per_model: dict[str, str | None] = {p.stem: None for p in paths}
    if inputs is not None:
        ip = Path(inputs)
        if ip.is_dir():
            for p in paths:
                found = [ip / f"{p.stem}{s}" for s in (".npy", ".npz") if (ip / f"{p.stem}{s}").is_file()]
                per_model[p.stem] = str(found[0]) if found else None
        elif ip.is_file():
            if len(paths) != 1:
                raise McucError("--inputs names one file but several models run: give a directory of MODEL.npy/.npz")
            per_model[paths[0].stem] = str(ip)
        else:
            raise McucError("no such inputs file or directory", where=str(ip))
    def options_of(p: Path) -> CompileOptions:
        if options is not None:
            return options
        rec = baseline.records.get(record_key(p.stem, b.qualified))
        return rec.options if rec is not None else CompileOptions()

    return [Job(str(p), b.qualified, sim=sim, inputs=per_model[p.stem], samples=samples, timeout=timeout,
                path_in_baseline=_rel_path(p, base_dir), options=options_of(p)) for p in paths]


def run_jobs(jobs: list[Job], n_jobs: int, *, progress: bool = True) -> list[Outcome]:
    """Measure every job; several at once in worker processes when ``n_jobs`` > 1. Results come
    back in the jobs' order."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    results: dict[int, Outcome] = {}
    cols = (TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn())
    parallel = n_jobs > 1 and len(jobs) > 1
    pool = futs = None
    t0 = time.perf_counter()
    if parallel:
        # Every job is submitted before the progress bar starts its refresh thread: the workers
        # are forked at the first submit, and a fork should not copy a thread holding a lock.
        pool = ProcessPoolExecutor(max_workers=min(n_jobs, len(jobs)))
        futs = {pool.submit(measure_safely, job): i for i, job in enumerate(jobs)}
    try:
        with Progress(*cols, console=Console(stderr=True), disable=not progress, transient=False) as bar:
            task = bar.add_task("mcuc regress", total=len(jobs))
            if not parallel:
                for i, job in enumerate(jobs):
                    bar.update(task, description=f"{job.name} on {job.board}")
                    t1 = time.perf_counter()
                    _, rec, err = measure_safely(job)
                    results[i] = Outcome(job, rec, err, time.perf_counter() - t1)
                    bar.advance(task)
            else:
                for fut in as_completed(futs):
                    i = futs[fut]
                    try:
                        _, rec, err = fut.result()
                    except Exception as e:  # noqa: BLE001 - a worker died (e.g. killed): that model failed
                        rec, err = None, f"worker process failed: {type(e).__name__}: {e}"
                    # Wall time since the pool started: an upper bound of this model's own time.
                    results[i] = Outcome(jobs[i], rec, err, time.perf_counter() - t0)
                    bar.update(task, description=f"{jobs[i].name} done")
                    bar.advance(task)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return [results[i] for i in range(len(jobs))]


def evaluate(baseline: Baseline, outcomes: list[Outcome]) -> None:
    for o in outcomes:
        if o.record is None:
            o.deltas = [error_delta(o.key, o.error or "failed")]
        else:
            o.deltas = compare(baseline.records.get(o.key), o.record, baseline.tolerances_for(o.key))


def _first_line(cmd: list[str]) -> str | None:
    if shutil.which(cmd[0]) is None:
        return None
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = [ln.strip() for ln in (r.stdout or r.stderr).splitlines() if ln.strip()]
    return lines[0] if lines else None


def simulator_version(sim: str) -> str | None:
    if sim == "qemu":
        return _first_line(["qemu-system-arm", "--version"])
    if sim == "unicorn":
        import unicorn

        return f"unicorn {unicorn.__version__}"
    if sim == "renode":
        return _first_line(["renode", "--version"])
    if sim == "host":
        return "native (no simulator)"
    return None


def updated(baseline: Baseline, outcomes: list[Outcome]) -> Baseline:
    """The baseline with every measured record replaced (its own tolerances kept) and the
    versions of this run recorded. Records of other models and boards stay."""
    records = dict(baseline.records)
    for o in outcomes:
        if o.record is None:
            continue
        old = records.get(o.key)
        records[o.key] = o.record.model_copy(update={"tolerances": old.tolerances if old else None})
    sims = sorted({r.simulator for r in records.values()})
    recorded = Recorded(
        mcuc=__version__, python=platform.python_version(),
        date=datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat(),
        toolchains=sorted({r.toolchain for r in records.values() if r.toolchain}),
        simulators={s: v for s in sims if (v := simulator_version(s))})
    return baseline.model_copy(update={"records": records, "recorded": recorded})


def print_table(outcomes: list[Outcome], *, console=None, update: bool = False) -> None:
    from rich.console import Console
    from rich.table import Table

    # CI logs are not terminals: wide enough that a row stays one line.
    con = console or Console(width=None if sys.stdout.isatty() else 200)
    t = Table(title="mcuc regress: what moved (cycles are estimates of the board's cycle model)")
    for c, j in (("model@board", "left"), ("metric", "left"), ("baseline", "right"), ("measured", "right"),
                 ("change", "left"), ("tolerance", "right"), ("status", "left")):
        t.add_column(c, justify=j)
    style = {"regressed": "bold red", "new": "bold red", "error": "bold red", "improved": "green", "changed": "yellow"}
    for o in outcomes:
        if not o.deltas:
            rec = o.record
            t.add_row(o.key, "all metrics", "", "", f"unchanged ({rec.simulator}, {rec.samples} samples)", "", "ok")
        for d in o.deltas:
            if update and d.status == "new":  # --update is adding this record: nothing to fail
                t.add_row(d.key, d.metric, "none", "measured", "added to the baseline", "", "recorded")
                continue
            t.add_row(d.key, d.metric, d.baseline, d.measured, d.change, d.tolerance, d.status,
                      style=style.get(d.status))
    con.print(t)


def summary(outcomes: list[Outcome]) -> str:
    bad = [o for o in outcomes if o.failing]
    moved = sum(1 for o in outcomes if o.deltas and not o.failing)
    return (f"{len(outcomes)} model run(s): {len(bad)} failing, {moved} moved within tolerance or improved, "
            f"{len(outcomes) - len(bad) - moved} unchanged")


def failing_metrics(outcomes: list[Outcome]) -> list[str]:
    return [f"{d.key}: {d.metric}" for o in outcomes for d in o.deltas if d.status in FAILING]


def load_or_new(path, update: bool) -> Baseline:
    return schema.load(path, missing_ok=update)
