"""drop-identity: remove requantizations that change nothing.

``Q(DQ(x))`` with the same parameters (quantizers emit these between layers) lowers to a
requantize by exactly 1 between equal zero points; when its clamp spans the whole type, it is
the identity and goes. Preconditions: none.
"""

from __future__ import annotations

import numpy as np

from ..ir.graph import Graph
from . import register


def is_identity(node) -> bool:
    if node.op != "requantize" or node.attrs["in_zp"] != node.attrs["out_zp"]:
        return False
    x, y = node.inputs[0], node.out
    if x.type.dtype is not y.type.dtype:
        return False
    dt = y.type.dtype
    if tuple(node.attrs["act"]) != (dt.qmin, dt.qmax):
        return False
    probe = np.array([dt.qmin, -1, 0, 1, dt.qmax], np.int64) - node.attrs["in_zp"]
    rq = node.attrs["requant"]
    out = rq.apply(np.broadcast_to(probe.reshape(-1, 1), (5, max(rq.shift.size, 1))), 1 if rq.per_channel else None)
    return bool(np.all(out == probe.reshape(-1, 1))) and np.allclose(rq.ratio(), 1.0, rtol=0, atol=0)


@register("drop-identity")
def drop_identity(g: Graph, ctx) -> bool:
    changed = False
    for node in list(g.nodes):
        if is_identity(node) and not (g.is_output(node.out) and any(v is node.inputs[0] for v in g.inputs)):
            g.remove(node)
            g.replace_output_keep_name(node.out, node.inputs[0])
            changed = True
    return changed
