"""lower-requantize: ``Q(DQ(a))`` -> ``requantize(a)`` (integer scale change, exact rounding rule).

The ratio is ``a.scale / out.scale`` per channel of ``a``; it compiles to a pure shift when it is
a power of two and the model follows ONNX arithmetic, else to a dyadic multiplier (rounding.py).
Preconditions: bind-qparams ran. Not supported: per-channel output quantization; per-channel input
with non-zero zero points.
"""

from __future__ import annotations

from ..ir.graph import Graph, TensorType
from ..ir.quant import Requant
from . import register
from ._match import bound_dq, bound_q


def make_requant(ratio, ctx) -> Requant:
    onnx = ctx.convention == "onnx"
    return Requant.from_ratio(ratio, allow_shift=onnx, single=onnx)


def out_range(qnode):
    dt = qnode.out.type.dtype
    return tuple(qnode.attrs.get("range") or (dt.qmin, dt.qmax))


@register("lower-requantize")
def lower_requantize(g: Graph, ctx) -> bool:
    changed = False
    for node in list(g.nodes):
        if not bound_q(node):
            continue
        dq = bound_dq(node.inputs[0])
        if dq is None:
            continue
        a = dq.inputs[0]
        aq, oq = a.type.quant, node.out.type.quant
        if oq.per_channel:
            continue
        ratio = aq.scale / float(oq.scale)
        attrs = {"in_zp": int(aq.zero_point) if not aq.per_channel else 0, "requant": make_requant(ratio, ctx),
                 "out_zp": int(oq.zero_point), "act": out_range(node)}
        if aq.per_channel:
            if any(aq.zero_point != 0):
                continue
            attrs["axis"] = aq.axis
        new = g.add_node("requantize", [a], [TensorType(node.out.type.shape, node.out.type.dtype, oq, a.type.layout)],
                         attrs, name=node.name, before=node)
        g.remove(node)
        g.replace_output_keep_name(node.out, new.out)
        changed = True
    return changed
