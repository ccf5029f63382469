"""lower-activation: Relu and Clip become integer clamps.

``Q(relu(v))`` -> ``clamp(Q(v), Q(0), max)`` and ``Q(clip(v, lo, hi))`` -> ``clamp(Q(v), Q(lo), Q(hi))``:
exact because quantization is monotonic. ``relu(DQ(a))`` elsewhere -> ``DQ(clamp(a, zp, max))``.
Preconditions: bind-qparams ran. Clip of a dequantized tensor not followed by a quantize is not
supported (its bounds need not lie on the grid).
"""

from __future__ import annotations

import numpy as np

from ..ir.graph import Graph
from ..ir.interpreter import quantize_array
from . import register
from ._match import add_dq, bound_dq, bound_q, single_use


def _q_scalar(value, qnode) -> int:
    return int(quantize_array(np.float32(value), qnode.out.type.quant, qnode.out.type.dtype, qnode.attrs.get("range")))


@register("lower-activation")
def lower_activation(g: Graph, ctx) -> bool:
    changed = _quantized_activations(g)
    for node in list(g.nodes):
        if node.op == "relu":
            dq = bound_dq(node.inputs[0])
            if dq is None or dq.inputs[0].type.quant.per_channel and np.any(dq.inputs[0].type.quant.zero_point != 0):
                continue
            if any(bound_q(c) for c in g.consumers(node.out)):
                continue  # the exact Q(relu) rewrite applies once the quantize is bound
            a = dq.inputs[0]
            zp = int(np.asarray(a.type.quant.zero_point).reshape(-1)[0])
            c = g.add_node("clamp", [a], [a.type.with_()], {"lo": zp, "hi": a.type.dtype.qmax}, name=node.name, before=node)
            y = add_dq(g, c.out, node, f"{node.name}_dq")
            g.remove(node)
            g.replace_output_keep_name(node.out, y)
            changed = True
    return changed


def _quantized_activations(g: Graph) -> bool:
    changed = False
    for node in list(g.nodes):
        if bound_q(node):
            act = node.inputs[0].producer
            if act is None or act.op not in ("relu", "clip") or not single_use(g, act.out):
                continue
            if node.out.type.quant.per_channel:
                continue
            dt = node.out.type.dtype
            rng = node.attrs.get("range") or (dt.qmin, dt.qmax)
            if act.op == "relu":
                lo, hi = _q_scalar(0.0, node), rng[1]
            else:
                lo = rng[0] if act.attrs["lo"] is None else _q_scalar(act.attrs["lo"], node)
                hi = rng[1] if act.attrs["hi"] is None else _q_scalar(act.attrs["hi"], node)
            q = g.add_node("quantize", [act.inputs[0]], [node.out.type.with_()], dict(node.attrs), name=f"{node.name}_pre", before=node)
            c = g.add_node("clamp", [q.out], [node.out.type.with_()], {"lo": max(lo, rng[0]), "hi": min(hi, rng[1])},
                           name=act.name, before=node)
            g.remove(node)
            g.remove(act)
            g.replace_output_keep_name(node.out, c.out)
            changed = True
    return changed

