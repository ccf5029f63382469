"""lower-movement: data movement and max pooling run on the integers themselves.

``op(DQ(a))`` -> ``DQ(op(a))`` for reshape, transpose, maxpool, concat of equally quantized
inputs, and pad (the pad value quantized; it must land exactly on the grid). ``Q(reshape(v))`` ->
``reshape(Q(v))`` (and transpose) so the pattern below a movement op is reached. ``Q(concat(v...))``
with differently quantized inputs -> ``concat(Q(v)...)`` so each input is requantized to the
output grid (what the float graph computes, rounded once per input).
Preconditions: bind-qparams ran. Not supported: per-channel quantization through a reshape that
splits the channel axis; a pad value that is not on the input's grid.
"""

from __future__ import annotations

import numpy as np

from ..errors import McucError
from ..ir.graph import Graph, TensorType
from . import register
from ._match import add_dq, bound_dq, bound_q, single_use
from .bind_qparams import _map_axis


@register("lower-movement")
def lower_movement(g: Graph, ctx) -> bool:
    changed = False
    for node in list(g.nodes):
        if node.op in ("reshape", "transpose", "maxpool", "pad") and node.out.type.dtype.is_float:
            dq = bound_dq(node.inputs[0])
            if dq is None:
                continue
            a = dq.inputs[0]
            q = a.type.quant
            attrs = dict(node.attrs)
            if node.op == "pad" and not q.per_channel:
                v = float(attrs["value"]) / float(q.scale) + int(q.zero_point)
                if v != round(v) or not a.type.dtype.qmin <= v <= a.type.dtype.qmax:
                    raise McucError(f"pad value {attrs['value']} is not representable in the input's quantization",
                                    where=f"node {node.name!r} (Pad)")
                attrs["value"] = int(v)
            if node.op == "pad" and q.per_channel:
                if float(attrs["value"]) != 0.0 or np.any(q.zero_point != 0):
                    continue
                attrs["value"] = 0  # real zero is the stored zero of every channel
            try:
                oq = _map_axis(node, q, forward=True) if node.op != "maxpool" else q
            except McucError:
                continue
            new = g.add_node(node.op, [a], [TensorType(node.out.type.shape, a.type.dtype, oq, node.out.type.layout)],
                             attrs, name=node.name, before=node)
            y = add_dq(g, new.out, node, f"{node.name}_dq")
            g.remove(node)
            g.replace_output_keep_name(node.out, y)
            changed = True
        elif node.op == "concat" and node.out.type.dtype.is_float:
            dqs = [bound_dq(i) for i in node.inputs]
            if all(d is not None for d in dqs):
                ins = [d.inputs[0] for d in dqs]
                q0 = ins[0].type.quant
                if all(i.type.quant == q0 and i.type.dtype is ins[0].type.dtype for i in ins) and not q0.per_channel:
                    new = g.add_node("concat", ins, [TensorType(node.out.type.shape, ins[0].type.dtype, q0, node.out.type.layout)],
                                     dict(node.attrs), name=node.name, before=node)
                    y = add_dq(g, new.out, node, f"{node.name}_dq")
                    g.remove(node)
                    g.replace_output_keep_name(node.out, y)
                    changed = True
        elif bound_q(node) and _push_q_above_movement(g, node):
            changed = True
        elif bound_q(node):
            cat = node.inputs[0].producer
            if cat is None or cat.op != "concat" or not single_use(g, cat.out) or not cat.out.type.dtype.is_float:
                continue
            qs = []
            for i, v in enumerate(cat.inputs):
                qn = g.add_node("quantize", [v], [TensorType(v.type.shape, node.out.type.dtype, node.out.type.quant, v.type.layout)],
                                dict(node.attrs), name=f"{node.name}_in{i}", before=node)
                qs.append(qn.out)
            new = g.add_node("concat", qs, [node.out.type.with_()], dict(cat.attrs), name=cat.name, before=node)
            g.remove(node)
            g.remove(cat)
            g.replace_output_keep_name(node.out, new.out)
            changed = True
    return changed



def _push_q_above_movement(g: Graph, qnode) -> bool:
    """``Q(reshape(v))`` -> ``reshape(Q(v))`` (likewise transpose): quantization is elementwise."""
    mv = qnode.inputs[0].producer
    if mv is None or mv.op not in ("reshape", "transpose") or not mv.out.type.dtype.is_float:
        return False
    if not single_use(g, mv.out) or qnode.out.type.quant.per_channel:
        return False
    v = mv.inputs[0]
    q = g.add_node("quantize", [v], [TensorType(v.type.shape, qnode.out.type.dtype, qnode.out.type.quant, v.type.layout)],
                   dict(qnode.attrs), name=f"{qnode.name}_pre", before=qnode)
    new = g.add_node(mv.op, [q.out], [qnode.out.type.with_(layout=mv.out.type.layout)], dict(mv.attrs), name=mv.name, before=qnode)
    g.remove(qnode)
    g.remove(mv)
    g.replace_output_keep_name(qnode.out, new.out)
    return True

