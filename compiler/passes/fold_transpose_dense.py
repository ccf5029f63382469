"""fold-transpose-dense: a flatten of an NCHW view before a dense layer reads the NHWC tensor directly.

``dense(reshape(transpose(x_nhwc, NHWC->NCHW)))`` -> ``dense(reshape(x_nhwc))`` with the dense
weights' input columns permuted at compile time, so no transpose runs on the device.
Preconditions: the transpose and reshape results have no other use; the reshape flattens all
non-batch axes.
"""

from __future__ import annotations

import numpy as np

from ..ir.graph import Graph
from . import register
from ._match import single_use


@register("fold-transpose-dense")
def fold_transpose_dense(g: Graph, ctx) -> bool:
    changed = False
    for node in list(g.nodes):
        if node.op != "dense" or not node.inputs[1].is_const:
            continue
        r = node.inputs[0].producer
        if r is None or r.op != "reshape" or not single_use(g, node.inputs[0]):
            continue
        t = r.inputs[0].producer
        if t is None or t.op != "transpose" or tuple(t.attrs["perm"]) != (0, 3, 1, 2) or not single_use(g, r.inputs[0]):
            continue
        n, h, w, c = t.inputs[0].type.shape
        if tuple(r.attrs["shape"]) != (n, c * h * w):
            continue
        wt = node.inputs[1]
        m = wt.type.shape[0]
        # Column (c, y, x) of the NCHW flatten is column (y, x, c) of the NHWC flatten.
        new_w = np.asarray(wt.const).reshape(m, c, h, w).transpose(0, 2, 3, 1).reshape(m, -1)
        node.inputs[1] = g.const(f"{wt.name}_nhwc", np.ascontiguousarray(new_w), wt.type.dtype, wt.type.quant)
        r.inputs = [t.inputs[0]]
        g.remove(t)
        changed = True
    return changed
