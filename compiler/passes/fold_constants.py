"""fold-constants: evaluate nodes whose inputs are all constant, and Shape of static tensors.

Preconditions: none. Uses the interpreter, so folding means exactly what running would mean.
Dequantize is never folded: a DequantizeLinear of constant weights marks quantized weights,
which the lowering reads. Quantize of constant floats is folded (weights quantized at export).
"""

from __future__ import annotations

import numpy as np

from ..ir import interpreter
from ..ir.dtypes import ONNX_TO_DTYPE, DType
from ..ir.graph import Graph, TensorType, Value
from . import register

_NP_TO_DTYPE = {np.dtype(d.np): d for d in ONNX_TO_DTYPE.values() if d not in (DType.INT4, DType.UINT4)}


def _as_const(like: Value, arr, dtype: DType | None = None) -> Value:
    arr = np.asarray(arr)
    if dtype is None:
        dtype = DType.FLOAT32 if arr.dtype.kind == "f" else _NP_TO_DTYPE.get(arr.dtype, DType.INT64)
    if dtype is DType.FLOAT32:
        arr = arr.astype(np.float32)
    v = Value(like.name, TensorType(arr.shape, dtype, like.type.quant if dtype.is_int else None), arr.astype(dtype.np) if dtype is not DType.FLOAT32 else arr)
    return v


@register("fold-constants")
def fold_constants(g: Graph, ctx) -> bool:
    changed = False
    for node in list(g.nodes):
        if node.op == "dequantize":
            continue
        if node.op == "onnx" and node.attrs["op_type"] == "Shape" and node.inputs[0] is not None:
            x = node.inputs[0]
            if x.type.shape and not (x.producer is not None and x.producer.op == "onnx" and not x.type.shape):
                a = node.attrs["onnx_attrs"]
                shape = np.array(x.type.shape, dtype=np.int64)[a.get("start", 0):a.get("end", None)]
                new = _as_const(node.out, shape, DType.INT64)
                g.remove(node)
                g.replace_uses(node.out, new)
                changed = True
            continue
        if not all(i is None or i.is_const for i in node.inputs):
            continue
        if node.op == "quantize" and len(node.inputs) == 1 and node.out.type.quant is None:
            continue
        res = interpreter.eval_node(node, [None if i is None else i.const for i in node.inputs])
        res = res if isinstance(res, tuple) else (res,)
        g.remove(node)
        for o, r in zip(node.outputs, res):
            dtype = o.type.dtype if node.op != "onnx" else None
            g.replace_uses(o, _as_const(o, r, dtype))
        changed = True
    return changed
