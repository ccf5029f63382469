"""``mcuc sweep``: accuracy against cost over bit-width policies and width multipliers.

Each point is one (width multiplier, policy) pair:

- the float model: from a model builder (Python code, ``module:function`` returning an object with
  ``widths``, ``model(width, body_bits)``, ``calibration()`` and ``labelled()``; ``body_bits`` 2 or 1
  asks for the net fine-tuned for a ternary / binary body) or one ONNX file with .npy data;
- quantized with ``mcuc quantize`` under the policy (POLICIES);
- accuracy: mcuc's reference interpreter (which the generated C equals bit for bit) on the
  labelled set;
- cost: weights flash and arena bytes from mcuc's code generator for the board, and cycles per
  inference estimated by running the firmware once in the board's simulator under mcuc's timing
  model (cortex_m4.yaml / ri5cy.yaml) -- never a measurement of hardware; boards without a
  simulator (the host) get no cycle figure, and the JSON says so.

Points run in parallel worker processes (concurrent.futures); the float models are built first,
so that no two workers train the same one. The JSON lists every point with ``pareto_flash`` and
``pareto_cycles`` flags (not beaten on accuracy by a point that is also no more expensive); the
PNG plots accuracy against each cost with the frontier drawn and its points marked.
"""

from __future__ import annotations

import importlib
import json
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import McucError

# Policy name -> (Options.weight_bits, flash budget, body bits of the fine-tuned model or None).
BASE_POLICIES = {
    "int8": ("8", None, None),
    "int4": ("4-ends8", None, None),
    "ternary": ("ternary", None, 2),
    "binary": ("binary", None, 1),
}
DEFAULT_POLICIES = ("int8", "int4", "mixed:70%", "mixed:55%", "ternary", "binary")


def policy_spec(name: str) -> tuple[str, str | None, int | None]:
    """(weight_bits, flash budget, body bits) of a policy name: a base policy or ``mixed:BUDGET``."""
    if name in BASE_POLICIES:
        return BASE_POLICIES[name]
    if name.startswith("mixed:") and len(name) > 6:
        return "mixed", name[6:], None
    raise McucError(f"unknown policy {name!r}; expected one of {', '.join(BASE_POLICIES)} or mixed:BUDGET "
                    "(bytes or a percentage of the all-int8 weights, e.g. mixed:60%)")


@dataclass(frozen=True)
class Source:
    """Where the float models and the data come from (picklable: workers rebuild from it)."""

    builder: str | None = None      # "module:function"
    model_path: str | None = None
    calibration_path: str | None = None
    data_path: str | None = None
    labels_path: str | None = None

    def load(self):
        if self.builder:
            return _load_builder(self.builder)
        return _FileSource(self)


class _FileSource:
    def __init__(self, src: Source):
        from .cli import load_float_model
        from .data import load_calibration

        self.name = Path(src.model_path).stem
        self.widths = (1.0,)
        self._model = load_float_model(src.model_path)
        self._calib = load_calibration(src.calibration_path)
        self._x = _load_npy(src.data_path, "labelled data")
        if self._x.dtype.kind != "f" or not np.all(np.isfinite(self._x)):
            raise McucError(f"labelled data {src.data_path}: expected finite float samples, got {self._x.dtype}")
        p = Path(src.labels_path)
        self._y = _load_npy(p, "labels")
        if self._y.ndim != 1 or self._y.dtype.kind not in "iu" or len(self._y) != len(self._x):
            raise McucError(f"labels {p}: expected {len(self._x)} integer class indices (one per sample of the data), "
                            f"got {self._y.dtype} of shape {tuple(self._y.shape)}")

    def model(self, width: float, body_bits=None):
        return self._model

    def calibration(self):
        return self._calib

    def labelled(self):
        return self._x, self._y


def _load_npy(path, what: str) -> np.ndarray:
    p = Path(path)
    if not p.is_file():
        raise McucError(f"{what} {p}: no such file")
    try:
        arr = np.load(p, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise McucError(f"{what} {p}: not a readable .npy file ({type(e).__name__})") from None
    if not isinstance(arr, np.ndarray):
        raise McucError(f"{what} {p}: expected one array in a .npy file")
    return arr


def _load_builder(spec: str):
    mod, _, attr = spec.partition(":")
    if not mod or not attr:
        raise McucError(f"--builder {spec!r}: expected module:function")
    try:
        fn = getattr(importlib.import_module(mod), attr)
    except (ImportError, AttributeError) as e:
        raise McucError(f"--builder {spec!r}: cannot load it ({type(e).__name__}: {e})") from None
    b = fn()
    for need in ("widths", "model", "calibration", "labelled"):
        if not hasattr(b, need):
            raise McucError(f"--builder {spec!r}: the object it returns has no {need!r}")
    return b


@dataclass
class Config:
    source: Source
    widths: tuple[float, ...]
    policies: tuple[str, ...]
    board: str = "stm32f4-discovery"
    cycles: str = "auto"   # auto | run | none
    jobs: int = 0


@dataclass
class Point:
    width: float
    policy: str
    accuracy: float | None = None
    float_accuracy: float | None = None
    weights_bytes: int | None = None
    arena_bytes: int | None = None
    macs: int | None = None
    cycles: int | None = None
    plan: dict = field(default_factory=dict)
    seconds: float = 0.0
    error: str | None = None
    pareto_flash: bool = False
    pareto_cycles: bool = False


def _model(s, source: Source, width: float, body_bits):
    """The builder's float model; its own failures become one-line errors naming it."""
    try:
        return s.model(width, body_bits)
    except McucError:
        raise
    except Exception as e:  # noqa: BLE001  (user code: report it, do not crash the worker pool)
        raise McucError(f"builder {source.builder}: model({width:g}, {body_bits}) failed: {type(e).__name__}: {e}") from None


def _build_model(source: Source, width: float, body_bits) -> str | None:
    """Worker: build (and so cache) one float model; returns None or the error."""
    try:
        _model(source.load(), source, width, body_bits)
    except McucError as e:
        return str(e)
    return None


def _cycles_possible(board_name: str, mode: str) -> tuple[bool, str]:
    from ..boards import load_board

    if mode == "none":
        return False, "cycles not requested (--cycles none)"
    board = load_board(board_name)
    sims = board.simulators
    has_sim = sims is not None and any(getattr(sims, k, None) is not None for k in ("qemu", "unicorn", "renode"))
    if not has_sim:
        if mode == "run":
            raise McucError(f"--cycles run: board {board_name!r} has no simulator to run firmware in")
        return False, f"no cycle estimate: board {board_name!r} has no simulator (choose e.g. --board stm32f4-discovery)"
    from ..sim.runner import cycle_model_text

    return True, cycle_model_text(board_name) + ", firmware run once per point in the board's simulator"


def _run_point(cfg: Config, width: float, policy: str, with_cycles: bool) -> Point:
    """Worker: quantize, measure accuracy and cost of one point."""
    from ..boards import load_board
    from ..codegen import generate_project, render_project
    from ..ir import interpreter
    from ..pipeline import compile_model
    from .ptq import Options, quantize

    t0 = time.perf_counter()
    pt = Point(width, policy)
    try:
        s = cfg.source.load()
        bits, budget, body = policy_spec(policy)
        model = _model(s, cfg.source, width, body)
        x, y = s.labelled()
        res = quantize(model, s.calibration(), Options(weight_bits=bits, flash_budget=budget), where=f"{policy} x{width:g}")
        pt.plan = {k: v.text() for k, v in res.plan.items()}
        with tempfile.TemporaryDirectory(prefix="mcuc-sweep-") as d:
            p = Path(d) / "q.onnx"
            p.write_bytes(res.model.SerializeToString())
            g = compile_model(p, convention="onnx")
            out = interpreter.run(g, {g.inputs[0].name: np.asarray(x, np.float32)})[g.outputs[0].name]
            pt.accuracy = float((out.reshape(len(y), -1).argmax(1) == y).mean())
            fm = _model(s, cfg.source, width, None)
            pt.float_accuracy = _float_accuracy(fm, x, y)
            man = render_project(g, load_board(cfg.board), model_name="m", model_sha256="0" * 64).manifest
            pt.weights_bytes = int(man["flash"]["weights_bytes"])
            pt.arena_bytes = int(man["memory"]["arena_bytes"])
            pt.macs = int(sum(li.get("macs", 0) for li in man["layers"]))
            if with_cycles:
                from ..sim.runner import run_firmware

                proj = Path(d) / "fw"
                generate_project(g, cfg.board, proj, model_name="m", model_sha256="0" * 64)
                vals = interpreter.run(g, {g.inputs[0].name: np.asarray(x[:1], np.float32)}, keep=True)
                q = next(n for n in g.nodes if n.op == "quantize")
                run = run_firmware(proj, {g.inputs[0].name: vals[q.out.name]}, sim="auto")
                src = g.outputs[0].producer.inputs[0] if g.outputs[0].producer.op == "dequantize" else g.outputs[0]
                if not np.array_equal(run.outputs[g.outputs[0].name], vals[src.name]):
                    raise McucError("the firmware's output differs from the interpreter's")
                pt.cycles = int(run.cycles)
    except McucError as e:
        pt.error = str(e)
    pt.seconds = round(time.perf_counter() - t0, 2)
    return pt


def _float_accuracy(model, x, y) -> float:
    from .runtime import run

    out = run(model, np.asarray(x, np.float32))
    name = model.graph.output[0].name
    return float((out[name].reshape(len(y), -1).argmax(1) == y).mean())


def pareto(points: list[Point], cost: str) -> None:
    """Flag the points no other point beats: at most the same cost with higher accuracy, or
    lower cost with at least the same accuracy."""
    ok = [p for p in points if p.accuracy is not None and getattr(p, cost) is not None]
    for p in ok:
        c, a = getattr(p, cost), p.accuracy
        beaten = any((getattr(q, cost) <= c and q.accuracy > a) or (getattr(q, cost) < c and q.accuracy >= a)
                     for q in ok if q is not p)
        setattr(p, f"pareto_{'flash' if cost == 'weights_bytes' else 'cycles'}", not beaten)


def run_sweep(cfg: Config, progress=None) -> tuple[list[Point], dict]:
    """All points of the sweep (in width, policy order) and the run's metadata."""
    for p in cfg.policies:
        policy_spec(p)
    with_cycles, cycles_note = _cycles_possible(cfg.board, cfg.cycles)
    jobs = cfg.jobs or os.cpu_count() or 1
    builds = sorted({(w, policy_spec(p)[2]) for w in cfg.widths for p in cfg.policies}, key=lambda k: (k[0], k[1] or 0))
    tasks = [(w, p) for w in cfg.widths for p in cfg.policies]
    total = len(builds) + len(tasks)
    done = 0
    results: dict[tuple, Point] = {}
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=jobs) as ex:
        futs = {ex.submit(_build_model, cfg.source, w, b): ("build", w, b) for w, b in builds}
        for f in as_completed(futs):
            err = f.result()
            if err:
                raise McucError(err)
            _, w, b = futs[f]
            done += 1
            if progress:
                progress(done, total, f"built x{w:g}" + ("" if b is None else f" fine-tuned for a {b}-bit body"))
        futs = {ex.submit(_run_point, cfg, w, p, with_cycles): (w, p) for w, p in tasks}
        for f in as_completed(futs):
            pt = f.result()
            results[(pt.width, pt.policy)] = pt
            done += 1
            if progress:
                acc = "failed" if pt.accuracy is None else f"{100 * pt.accuracy:.2f}%"
                progress(done, total, f"{pt.policy} x{pt.width:g}: {acc}")
    points = [results[t] for t in tasks]
    pareto(points, "weights_bytes")
    pareto(points, "cycles")
    model_name = cycles_note.split("(")[0].replace("estimated,", "").strip() if with_cycles else None
    meta = {"board": cfg.board, "cycles": cycles_note, "cycle_model": model_name, "jobs": jobs, "seconds": round(time.perf_counter() - t0, 1),
            "accuracy": "mcuc reference interpreter (bit-exact with the generated C) on the labelled set",
            "weights_bytes": "flash.weights_bytes of mcuc's generated code for the board",
            "arena_bytes": "memory.arena_bytes of mcuc's generated code for the board"}
    return points, meta


def write_json(path: Path, source_name: str, points: list[Point], meta: dict) -> None:
    from dataclasses import asdict

    path.write_text(json.dumps({"model": source_name, **meta, "points": [asdict(p) for p in points]}, indent=1) + "\n")


def plot(path: Path, title: str, points: list[Point], meta: dict) -> None:
    """Accuracy against weights flash (and against estimated cycles when there are any)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    axes_spec = [("weights_bytes", "pareto_flash", "weights flash (bytes)")]
    if any(p.cycles for p in points):
        axes_spec.append(("cycles", "pareto_cycles", f"cycles per inference (estimated: {meta['cycle_model']})"))
    fig, axes = plt.subplots(1, len(axes_spec), figsize=(6.5 * len(axes_spec), 4.8), squeeze=False)
    policies = list(dict.fromkeys(p.policy for p in points))
    widths = sorted({p.width for p in points})
    markers = "os^Dvp*hX"
    colors = plt.get_cmap("tab10")
    for ax, (cost, flag, label) in zip(axes[0], axes_spec):
        ok = [p for p in points if p.accuracy is not None and getattr(p, cost) is not None]
        for p in ok:
            ax.scatter(getattr(p, cost), 100 * p.accuracy, color=colors(policies.index(p.policy) % 10),
                       marker=markers[widths.index(p.width) % len(markers)], s=60 if getattr(p, flag) else 30,
                       edgecolors="black" if getattr(p, flag) else "none", linewidths=1.2, zorder=3)
        front = sorted((p for p in ok if getattr(p, flag)), key=lambda p: getattr(p, cost))
        if front:
            ax.step([getattr(p, cost) for p in front], [100 * p.accuracy for p in front], where="post", color="black",
                    linewidth=1, zorder=2, label="Pareto frontier (points outlined)")
        ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("top-1 accuracy (%)")
        ax.grid(True, which="both", alpha=0.3)
    for i, pol in enumerate(policies):
        axes[0][0].scatter([], [], color=colors(i % 10), marker="o", label=pol)
    for j, w in enumerate(widths):
        axes[0][0].scatter([], [], color="grey", marker=markers[j % len(markers)], label=f"width x{w:g}")
    axes[0][0].legend(fontsize=7, loc="lower right")
    fig.suptitle(f"{title}: mcuc sweep on {meta['board']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)
