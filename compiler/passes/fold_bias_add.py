"""fold-bias-add: ``add(DQ(acc), bias)`` after an integer dense / conv -> bias inside the op.

Gemm and MatMul+Add arrive as matmul followed by add; once the matmul is an integer dense with
an int32 accumulator, the add of a constant bias is folded into it (exact when the bias scale is
the accumulator's, as quantizers emit it). Preconditions: lower-conv ran; the accumulator has
no other use and no bias yet.
"""

from __future__ import annotations

import numpy as np

from ..ir.dtypes import DType
from ..ir.graph import Graph
from . import register
from ._match import bound_dq, single_use
from .lower_conv import bias_to_acc


@register("fold-bias-add")
def fold_bias_add(g: Graph, ctx) -> bool:
    changed = False
    for node in list(g.nodes):
        if node.op != "add" or node.out.type.dtype is not DType.FLOAT32:
            continue
        for ai, bi in ((0, 1), (1, 0)):
            dq = bound_dq(node.inputs[ai])
            if dq is None:
                continue
            acc = dq.inputs[0]
            op = acc.producer
            if op is None or op.op not in ("dense", "conv2d") or op.attrs.get("requant") is not None:
                continue
            if len(op.inputs) > 2 and op.inputs[2] is not None:
                continue
            if not single_use(g, acc) or not single_use(g, dq.out):
                continue
            b = node.inputs[bi]
            channels = acc.type.shape[-1] if op.op == "dense" else acc.type.shape[1 if op.attrs["layout"] == "NCHW" else 3]
            bshape = (bound_dq(b).inputs[0] if bound_dq(b) is not None else b).type.shape
            want = {(channels,), (1, channels)} if op.op == "dense" else {(1, channels, 1, 1), (channels, 1, 1)}
            if tuple(bshape) not in want:
                continue
            try:
                bias = bias_to_acc(b, acc.type.quant, channels, node.name)
            except Exception:
                continue
            op.inputs = op.inputs[:2] + [g.const(f"{op.name}_bias", bias.astype(np.int32), DType.INT32)]
            g.remove(node)
            g.replace_output_keep_name(node.out, dq.out)
            changed = True
            break
    return changed
