"""reimport: hand generic ``onnx`` nodes back to their front-end handler once their operands are constant.

Preconditions: runs after fold-constants. Nodes whose handler still lacks a constant operand
stay generic; ``check-lowered`` reports any that survive to the end.
"""

from __future__ import annotations

from ..frontend import HANDLERS, NeedConst, NodeView
from ..frontend.context import ImportContext
from ..ir.graph import Graph
from . import register


@register("reimport")
def reimport(g: Graph, ctx) -> bool:
    changed = False
    ictx = ImportContext(g, g.meta.get("source", "<model>"), g.meta.get("opset", 13))
    for node in list(g.nodes):
        if node.op != "onnx":
            continue
        a = node.attrs
        fn = HANDLERS.get((a["domain"], a["op_type"]))
        if fn is None:
            continue
        view = NodeView(a["op_type"], a["domain"], node.name, a["onnx_attrs"], list(node.inputs),
                        [o.name for o in node.outputs], a["opset"])
        mark = len(g.nodes)
        try:
            outs = fn(ictx, view)
        except NeedConst:
            del g.nodes[mark:]
            continue
        g.remove(node)
        for old, new in zip(node.outputs, outs):
            if new is not None:
                g.replace_output_keep_name(old, new)
        changed = True
    return changed
