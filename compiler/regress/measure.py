"""One regression measurement: compile a model, build it for a board, run it on its inputs and
turn what came back into a baseline ``Record``.

``measure(job)`` is a plain function of a picklable ``Job`` so that many models run in worker
processes; each run works in its own temporary directory.

Inputs of a model, in this order: the file given for it (``Job.inputs``); else ``MODEL.npy`` or
``MODEL.npz`` beside ``MODEL.onnx``; else ``samples`` deterministic random samples seeded by the
model file's SHA-256 (``random_inputs``), so the same model always gets the same inputs.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import McucError
from .schema import CompileOptions, LayerRecord, OutputData, Record


@dataclass(frozen=True)
class Job:
    model: str  # path of the .onnx file
    board: str
    sim: str = "auto"
    inputs: str | None = None  # .npy / .npz; None: beside the model, else random
    samples: int = 4  # random samples when no input file exists
    timeout: float = 600.0
    path_in_baseline: str | None = None  # the model's path as the baseline stores it
    options: CompileOptions = field(default_factory=CompileOptions)

    @property
    def name(self) -> str:
        return Path(self.model).stem


def sha256_file(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def inputs_file(job: Job) -> Path | None:
    if job.inputs is not None:
        return Path(job.inputs)
    m = Path(job.model)
    for suffix in (".npy", ".npz"):
        p = m.with_suffix(suffix)
        if p.is_file():
            return p
    return None


def random_inputs(g, seed: int, samples: int) -> dict[str, np.ndarray]:
    """``samples`` inputs drawn uniformly over each input's integer range. A float input gets
    the dequantized values of random integers of its boundary quantize, so that quantizing them
    on the device gives back exactly those integers."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for v in g.inputs:
        shape = (samples * (v.type.shape[0] if v.type.shape else 1),) + tuple(v.type.shape[1:])
        if v.type.dtype.is_float:
            qs = [u for u in g.consumers(v) if u.op == "quantize"]
            if len(qs) != 1:
                raise McucError(f"float input {v.name!r} feeds no single quantize: give the inputs in a file")
            q = qs[0].out.type.quant
            dt = qs[0].out.type.dtype
            ints = rng.integers(dt.qmin, dt.qmax, size=shape, endpoint=True)
            scale = np.float32(q.scalar_scale())
            feeds[v.name] = ((ints - int(q.scalar_zp())).astype(np.float32) * scale).astype(v.type.dtype.np)
        else:
            dt = v.type.dtype
            feeds[v.name] = rng.integers(dt.qmin, dt.qmax, size=shape, endpoint=True).astype(dt.np)
    return feeds


def _inputs_sha256(feeds: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for k in sorted(feeds):
        a = np.ascontiguousarray(feeds[k])
        h.update(k.encode() + b"\0" + a.dtype.str.encode() + repr(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def load_job_inputs(job: Job, g, model_sha: str) -> tuple[dict[str, np.ndarray], str]:
    from ..io import load_inputs

    f = inputs_file(job)
    if f is not None:
        return load_inputs(f, g), f"file:{f.name}"
    seed = int(model_sha[:16], 16)
    return random_inputs(g, seed, job.samples), f"random:seed=sha256[:16],samples={job.samples}"


def measure(job: Job) -> Record:
    """Compile, build and run ``job`` in a temporary directory of its own; McucError on any
    failure."""
    from ..boards import load_board
    from ..codegen import generate_project
    from ..io import from_device, to_device
    from ..ir import interpreter
    model = Path(job.model)
    if not model.is_file():
        raise McucError("no such model file", where=str(model))
    board = load_board(job.board)
    sha = sha256_file(model)
    g = job.options.compile(model)
    feeds, source = load_job_inputs(job, g, sha)
    want = interpreter.run(g, feeds)
    dev_in = to_device(g, feeds)
    with tempfile.TemporaryDirectory(prefix="mcuc-regress-") as tmp:
        d = Path(tmp)
        man = generate_project(g, board, d, model_name=model.stem, model_sha256=sha, force=True)
        if board.simulators.host:
            from ..sim.host import run_host_detailed

            r = run_host_detailed(d, dev_in, timeout=job.timeout)
            outs, rep = r.outputs, None
        else:
            from ..sim.runner import report, run_firmware

            run = run_firmware(d, dev_in, sim=job.sim, timeout=job.timeout)
            outs, rep = run.outputs, report(run, man)
    got = from_device(g, outs)
    exact = all(np.array_equal(got[v.name], want[v.name]) for v in g.outputs)
    fl = man["flash"]
    common = dict(model=model.stem, path=job.path_in_baseline, model_sha256=sha, inputs=source,
                  inputs_sha256=_inputs_sha256(feeds), board=man["board"], options=job.options,
                  samples=int(next(iter(feeds.values())).shape[0]) if feeds else 0,
                  outputs={v.name: OutputData.of(outs[v.name]) for v in g.outputs}, interpreter_exact=exact,
                  arena_bytes=man["memory"]["arena_bytes"], weights_bytes=fl["weights_bytes"])
    if rep is None:
        return Record(**common, simulator="host", toolchain=man.get("toolchain"),
                      flash_bytes=fl["total_bytes"], layers=[])
    layers = [LayerRecord(name=li["name"], op=li["op"], macs=li.get("macs") or 0, instructions=li.get("instructions"),
                          cycles=li.get("cycles")) for li in rep["layers"]]
    return Record(**common, simulator=rep["simulator"], toolchain=rep["toolchain"],
                  cycle_model=rep["cycle_model"] if rep["cycles"] else None,
                  instructions=rep["instructions"], cycles=rep["cycles"] or None, flash_bytes=rep["flash_bytes"],
                  layers=layers)


def measure_safely(job: Job) -> tuple[Job, Record | None, str | None]:
    """For worker processes: (job, record, None) or (job, None, the one-line error)."""
    try:
        return job, measure(job), None
    except McucError as e:
        return job, None, str(e).splitlines()[0] if str(e) else type(e).__name__
    except Exception as e:  # noqa: BLE001 - a bug in mcuc: reported on the model, the others still run
        return job, None, f"internal error ({type(e).__name__}: {e}); this is a bug in mcuc"
