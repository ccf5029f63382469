"""dead-code: drop nodes whose results nothing uses; drop identity reshapes; merge reshape chains.

Preconditions: none.
"""

from __future__ import annotations

from ..ir.graph import Graph
from . import register
from ._match import single_use


@register("dead-code")
def dead_code(g: Graph, ctx) -> bool:
    changed = g.remove_dead()
    for node in list(g.nodes):
        if node.op != "reshape":
            continue
        x = node.inputs[0]
        if tuple(x.type.shape) == tuple(node.out.type.shape) and not g.is_output(node.out):
            g.remove(node)
            g.replace_uses(node.out, x)
            changed = True
        elif x.producer is not None and x.producer.op == "reshape" and single_use(g, x):
            node.inputs = [x.producer.inputs[0]]
            g.remove(x.producer)
            changed = True
    return changed
