"""The X / Y file conventions shared by ``mcuc interpret`` and ``mcuc run``.

X holds N samples stacked on axis 0 (in place of the batch dimension) in the ONNX input's dtype
and shape; a model with several inputs takes an .npz keyed by input name. Y is written the same
way in the ONNX outputs' dtypes: .npy for one output, .npz keyed by name for several. Files are
written to a temporary name and renamed, so a failure never leaves half a file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from .errors import McucError
from .ir.graph import Graph


def load_inputs(path: str | Path, g: Graph) -> dict[str, np.ndarray]:
    path = Path(path)
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise McucError(f"cannot read inputs: {e}", where=str(path)) from None
    if isinstance(data, np.lib.npyio.NpzFile):
        arrays = {k: data[k] for k in data.files}
    else:
        if len(g.inputs) != 1:
            names = ", ".join(v.name for v in g.inputs)
            raise McucError(f"the model has {len(g.inputs)} inputs ({names}): pass an .npz keyed by input name", where=str(path))
        arrays = {g.inputs[0].name: data}
    out = {}
    n = None
    for v in g.inputs:
        if v.name not in arrays:
            raise McucError(f"no array for model input {v.name!r} (found: {', '.join(arrays) or 'none'})", where=str(path))
        a = arrays[v.name]
        want = v.type.dtype.np
        if a.dtype != want:
            if v.type.dtype.is_float and a.dtype.kind == "f":
                a = a.astype(np.float32)
            else:
                raise McucError(f"input {v.name!r} has dtype {a.dtype}, the model expects {want}", where=str(path))
        shape = tuple(v.type.shape)
        if a.ndim == len(shape) - 1 and tuple(a.shape) == shape[1:]:
            a = a[None]
        if a.ndim != len(shape) or tuple(a.shape[1:]) != shape[1:]:
            raise McucError(f"input {v.name!r} has shape {tuple(a.shape)}; expected (N, {', '.join(map(str, shape[1:]))})", where=str(path))
        if n is not None and a.shape[0] != n:
            raise McucError("inputs hold different numbers of samples", where=str(path))
        n = a.shape[0]
        out[v.name] = np.ascontiguousarray(a)
    return out


def _atomic_save(path: Path, save) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        save(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_outputs(path: str | Path, outputs: dict[str, np.ndarray], g: Graph) -> None:
    path = Path(path)
    ordered = {v.name: outputs[v.name] for v in g.outputs}
    if path.suffix == ".npz":
        _atomic_save(path, lambda t: np.savez(t, **ordered))
    elif path.suffix == ".npy":
        if len(ordered) != 1:
            raise McucError(f"the model has {len(ordered)} outputs: write them to an .npz", where=str(path))
        arr = next(iter(ordered.values()))
        _atomic_save(path, lambda t: np.save(t, arr))
    else:
        raise McucError("output file must end in .npy or .npz", where=str(path))


def to_device(g: Graph, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Inputs as the compiled C takes them: a float input quantized exactly as the graph's
    boundary quantize does (the interpreter's own function), an integer input as it is."""
    from .ir.interpreter import eval_node

    out = {}
    for v in g.inputs:
        users = g.consumers(v)
        qs = [u for u in users if u.op == "quantize"]
        if v.type.dtype.is_float:
            if len(qs) != 1:
                raise McucError(f"float input {v.name!r} must feed exactly one quantize to run compiled")
            out[v.name] = eval_node(qs[0], [feeds[v.name]])
        else:
            out[v.name] = feeds[v.name]
    return out


def from_device(g: Graph, outs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Outputs in the ONNX output types: integer results of a boundary dequantize are dequantized."""
    from .ir.interpreter import eval_node

    res = {}
    for v in g.outputs:
        p = v.producer
        res[v.name] = eval_node(p, [outs[v.name]]) if p is not None and p.op == "dequantize" else outs[v.name]
    return res
