"""Small helpers the passes share for matching and building patterns (not a pass)."""

from __future__ import annotations

import numpy as np

from ..ir.dtypes import DType
from ..ir.graph import Graph, Node, TensorType, Value


def prod(v: Value | None, *ops: str) -> Node | None:
    """The node producing ``v`` if its op is one of ``ops``."""
    if v is None or v.producer is None:
        return None
    return v.producer if v.producer.op in ops else None


def bound_dq(v: Value | None) -> Node | None:
    """The dequantize (with bound qparams) producing ``v``."""
    n = prod(v, "dequantize")
    return n if n is not None and len(n.inputs) == 1 else None


def bound_q(n: Node) -> bool:
    return n.op == "quantize" and len(n.inputs) == 1


def const_value(v: Value | None) -> np.ndarray | None:
    """The float value of a constant, or of a dequantized constant (quantizers quantize BN's gamma)."""
    if v is None:
        return None
    if v.is_const:
        return np.asarray(v.const, np.float64)
    dq = bound_dq(v)
    if dq is not None and dq.inputs[0].is_const:
        from ..ir.interpreter import dequantize_array

        return dequantize_array(dq.inputs[0].const, dq.inputs[0].type.quant).astype(np.float64)
    return None


def quantized_float_op(g: Graph, qnode: Node, ops) -> Node | None:
    """The float op of ``Q(op(...))`` -- the pattern the lowering passes rewrite -- if ``qnode`` is a
    bound per-tensor quantize, its input comes from an op in ``ops`` and nothing else reads it."""
    if not bound_q(qnode) or qnode.out.type.quant.per_channel:
        return None
    op = qnode.inputs[0].producer
    if op is None or op.op not in ops or not op.out.type.dtype.is_float or g.use_count(op.out) != 1:
        return None
    return op


def batchnorm_affine(bn: Node) -> tuple[np.ndarray, np.ndarray] | None:
    """BatchNormalization as ``y = k * x + b`` per channel: (k, b), or None if not constant."""
    params = [const_value(v) for v in bn.inputs[1:]]
    if any(p is None for p in params):
        return None
    gamma, beta, mean, var = params
    k = gamma / np.sqrt(var + bn.attrs["epsilon"])
    return k, beta - k * mean


def single_use(g: Graph, v: Value) -> bool:
    return g.use_count(v) == 1


def only_consumer(g: Graph, v: Value) -> Node | None:
    cs = g.consumers(v)
    return cs[0] if len(cs) == 1 and not g.is_output(v) else None


def add_dq(g: Graph, a: Value, before: Node, name: str) -> Value:
    """dequantize(a) as a new float value, inserted before ``before``."""
    n = g.add_node("dequantize", [a], [TensorType(a.type.shape, DType.FLOAT32, None, a.type.layout)], {"axis": None},
                   name=name, before=before)
    return n.out


def replace_node_output(g: Graph, old: Value, new: Value) -> None:
    g.replace_output_keep_name(old, new)


def const_like(g: Graph, name: str, data, dtype: DType, quant=None) -> Value:
    return g.const(name, np.asarray(data), dtype, quant)


def per_axis(arr: np.ndarray, axis: int, rank: int) -> np.ndarray:
    shape = [1] * rank
    shape[axis] = -1
    return np.asarray(arr).reshape(shape)
