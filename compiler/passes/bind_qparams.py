"""bind-qparams: move constant scales and zero points of quantize / dequantize into tensor types.

Preconditions: scale and zero point operands are constant (after fold-constants); otherwise
nothing happens and check-lowered reports the node. Checks every scale (finite, > 0) and zero
point (in range) and raises a McucError naming the ONNX node. The quantization of an integer
tensor is set by the quantize that produces it, or, for integer graph inputs and constants,
by the dequantize that reads it; movement ops and clamps pass it through in both directions.
A tensor read by two dequantizes with different parameters is rejected.
"""

from __future__ import annotations

import numpy as np

from ..errors import McucError
from ..ir.graph import Graph, Value
from ..ir.quant import QParams
from . import register

_PASS_THROUGH = ("reshape", "transpose", "pad", "clamp", "concat")


def _where(g: Graph, node) -> str:
    op = "QuantizeLinear" if node.op == "quantize" else "DequantizeLinear"
    return f"{g.meta.get('source', '<model>')}: node {node.name!r} ({op}, opset {g.meta.get('opset', '?')})"


def qparams_from(g: Graph, node, dtype) -> QParams | None:
    scale = node.inputs[1] if len(node.inputs) > 1 else None
    zp = node.inputs[2] if len(node.inputs) > 2 else None
    if scale is None or not scale.is_const or (zp is not None and not zp.is_const):
        return None
    s = np.asarray(scale.const, dtype=np.float64)
    if s.size == 0:
        raise McucError("invalid scale: empty", where=_where(g, node))
    if not np.all(np.isfinite(s)):
        raise McucError("invalid scale: NaN or infinite", where=_where(g, node))
    if np.any(s <= 0):
        raise McucError(f"invalid scale: must be positive, found {s.reshape(-1)[np.argmin(s.reshape(-1))]:g}", where=_where(g, node))
    z = np.zeros(s.shape, np.int64) if zp is None else np.asarray(zp.const).astype(np.int64)
    if z.size and (z.min() < dtype.qmin or z.max() > dtype.qmax):
        raise McucError(f"zero point outside the {dtype.short} range", where=_where(g, node))
    axis = node.attrs.get("axis")
    if s.size == 1 and z.size == 1:
        return QParams(s.reshape(()), z.reshape(()), None)
    if axis is None:
        raise McucError("per-axis scale without an axis", where=_where(g, node))
    x = node.inputs[0]
    if s.size != x.type.shape[axis]:
        raise McucError(f"{s.size} scales for {x.type.shape[axis]} channels on axis {axis}", where=_where(g, node))
    return QParams(s.reshape(-1), np.broadcast_to(z.reshape(-1), s.reshape(-1).shape), axis)


def _map_axis(node, q: QParams, forward: bool) -> QParams:
    """Carry per-channel quantization through a movement op (forward: input -> output)."""
    if not q.per_channel:
        return q
    if node.op == "transpose":
        perm = list(node.attrs["perm"])
        ax = perm.index(q.axis) if forward else perm[q.axis]
        return QParams(q.scale, q.zero_point, ax)
    if node.op in ("clamp", "pad", "concat"):
        return q
    src = node.inputs[0].type.shape if forward else node.out.type.shape
    dst = node.out.type.shape if forward else node.inputs[0].type.shape
    c = src[q.axis]
    before = int(np.prod(src[: q.axis]))
    acc = 1
    for i, d in enumerate(dst):
        if acc == before and d == c:
            return QParams(q.scale, q.zero_point, i)
        acc *= d
    raise McucError(f"per-channel quantization cannot pass through reshape {node.name!r}")


def _set_backward(g: Graph, v: Value, q: QParams) -> None:
    v.type.quant = q
    p = v.producer
    if p is not None and p.op in _PASS_THROUGH and p.op != "concat":
        x = p.inputs[0]
        if x.type.dtype.is_int and x.type.quant is None:
            _set_backward(g, x, _map_axis(p, q, forward=False))


@register("bind-qparams")
def bind_qparams(g: Graph, ctx) -> bool:
    changed = False
    for node in g.nodes:
        if node.op == "quantize" and len(node.inputs) > 1:
            q = qparams_from(g, node, node.out.type.dtype)
            if q is None:
                continue
            node.out.type.quant = q
            node.inputs = node.inputs[:1]
            node.attrs.pop("axis", None)
            changed = True
        elif node.op == "dequantize" and len(node.inputs) > 1:
            x = node.inputs[0]
            q = qparams_from(g, node, x.type.dtype)
            if q is None:
                continue
            if x.type.quant is None:
                _set_backward(g, x, q)
            elif x.type.quant != q:
                if x.is_const:
                    x = Value(g.unique_name(x.name), x.type.with_(quant=q), x.const)
                else:
                    raise McucError(f"tensor {x.name!r} is dequantized with parameters {q.text()} that differ "
                                    f"from its quantization {x.type.quant.text()}", where=_where(g, node))
            node.inputs = [x]
            node.attrs.pop("axis", None)
            changed = True
        elif node.op in _PASS_THROUGH and node.out.type.dtype.is_int and node.out.type.quant is None:
            ins = [i for i in node.inputs if i is not None]
            if ins and all(i.type.quant is not None for i in ins):
                if node.op == "concat" and any(i.type.quant != ins[0].type.quant for i in ins):
                    continue
                node.out.type.quant = _map_axis(node, ins[0].type.quant, forward=True)
                changed = True
    return changed
