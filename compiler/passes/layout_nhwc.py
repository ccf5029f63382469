"""layout-nhwc: integer conv2d / pooling switch from ONNX's NCHW to NHWC (CMSIS-NN's layout).

Each NCHW op gets a transpose in front, runs in NHWC (conv weights OIHW -> OHWI), and a
transpose back behind; cancel-transposes then removes the pairs this creates between
neighbours, leaving transposes only where the model's own layout demands one.
Preconditions: the op is lowered to integers.
"""

from __future__ import annotations

import numpy as np

from ..ir.graph import Graph, TensorType
from ..ir.quant import QParams
from . import register

TO_NHWC = (0, 2, 3, 1)
TO_NCHW = (0, 3, 1, 2)


def _q_axis(q: QParams | None, perm) -> QParams | None:
    if q is None or not q.per_channel:
        return q
    return QParams(q.scale, q.zero_point, list(perm).index(q.axis))


def transpose_value(g: Graph, v, perm, before, name):
    shape = tuple(v.type.shape[p] for p in perm)
    layout = "NHWC" if tuple(perm) == TO_NHWC else "NCHW" if tuple(perm) == TO_NCHW else None
    t = TensorType(shape, v.type.dtype, _q_axis(v.type.quant, perm), layout)
    return g.add_node("transpose", [v], [t], {"perm": tuple(perm)}, name=name, before=before).out


@register("layout-nhwc")
def layout_nhwc(g: Graph, ctx) -> bool:
    changed = False
    for node in list(g.nodes):
        if node.op not in ("conv2d", "maxpool", "avgpool") or node.attrs.get("layout") != "NCHW":
            continue
        if not node.inputs[0].type.dtype.is_int:
            continue
        x = transpose_value(g, node.inputs[0], TO_NHWC, node, f"{node.name}_to_nhwc")
        ins = [x] + list(node.inputs[1:])
        if node.op == "conv2d":
            w = node.inputs[1]
            ins[1] = g.const(f"{w.name}_ohwi", np.ascontiguousarray(np.transpose(w.const, TO_NHWC)), w.type.dtype, w.type.quant)
        old = node.out
        shape = tuple(old.type.shape[p] for p in TO_NHWC)
        new = g.add_node(node.op, ins, [TensorType(shape, old.type.dtype, _q_axis(old.type.quant, TO_NHWC), "NHWC")],
                         {**node.attrs, "layout": "NHWC"}, name=node.name, before=node)
        back = transpose_value(g, new.out, TO_NCHW, node, f"{node.name}_to_nchw")
        g.remove(node)
        g.replace_output_keep_name(old, back)
        changed = True
    return changed
