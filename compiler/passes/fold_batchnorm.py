"""fold-batchnorm: ``batchnorm(conv2d(x, DQ(W), b))`` -> the conv with rescaled weights and bias.

BatchNormalization after a convolution is a per-output-channel affine map
``k * (conv - mean) + beta`` with ``k = gamma / sqrt(var + eps)``; it is absorbed exactly into the
weights' dequantization scale (``w_scale * |k|``, the integer weights negated where k < 0) and a
float bias ``k * (b - mean) + beta`` that lower-conv rounds onto the accumulator grid.
Preconditions: runs before lower-conv, on the float conv; the conv output has no other use.
Not supported: BatchNormalization not preceded by a convolution; k < 0 on weights holding the
type's minimum (negation would overflow).
"""

from __future__ import annotations

import numpy as np

from ..errors import McucError
from ..ir.dtypes import DType
from ..ir.graph import Graph
from ..ir.interpreter import dequantize_array
from ..ir.quant import QParams
from . import register
from ._match import batchnorm_affine, bound_dq, single_use


@register("fold-batchnorm")
def fold_batchnorm(g: Graph, ctx) -> bool:
    changed = False
    for bn in list(g.nodes):
        if bn.op != "batchnorm":
            continue
        conv = bn.inputs[0].producer
        if conv is None or conv.op != "conv2d" or not conv.out.type.dtype.is_float or not single_use(g, conv.out):
            continue
        affine = batchnorm_affine(bn)
        if affine is None:
            continue
        k, offset = affine
        o = conv.out.type.shape[1]
        wdq = bound_dq(conv.inputs[1])
        if wdq is not None and wdq.inputs[0].is_const:
            w = wdq.inputs[0]
            wq = w.type.quant
            sign = np.where(k < 0, -1, 1)
            wint = np.asarray(w.const).astype(np.int64) - np.broadcast_to(wq.zero_point, (o,)).reshape(-1, 1, 1, 1)
            wint = wint * sign.reshape(-1, 1, 1, 1)
            if wint.min() < w.type.dtype.qmin or wint.max() > w.type.dtype.qmax:
                raise McucError("BatchNormalization with a negative scale cannot fold into these weights",
                                where=f"node {bn.name!r} (BatchNormalization)")
            scale = np.broadcast_to(wq.scale, (o,)) * np.abs(k)
            nq = QParams(scale.astype(np.float32).astype(np.float64), np.zeros(o, np.int64), 0)
            nw = g.const(f"{w.name}_bn", wint, w.type.dtype, nq)
            newdq = g.add_node("dequantize", [nw], [wdq.out.type.with_()], {"axis": None}, name=f"{wdq.name}_bn", before=conv)
            conv.inputs[1] = newdq.out
        elif conv.inputs[1].is_const:
            wf = np.asarray(conv.inputs[1].const, np.float64) * k.reshape(-1, 1, 1, 1)
            conv.inputs[1] = g.const(f"{conv.inputs[1].name}_bn", wf.astype(np.float32), DType.FLOAT32)
        else:
            continue
        b = conv.input(2)
        if b is None:
            bf = np.zeros(o)
        elif b.is_const:
            bf = np.asarray(b.const, np.float64)
        elif bound_dq(b) is not None and bound_dq(b).inputs[0].is_const:
            bv = bound_dq(b).inputs[0]
            bf = dequantize_array(bv.const, bv.type.quant).astype(np.float64)
        else:
            continue
        nb = k * bf + offset
        conv.inputs = conv.inputs[:2] + [g.const(f"{conv.name}_bias_bn", nb.astype(np.float32), DType.FLOAT32)]
        g.remove(bn)
        g.replace_output_keep_name(bn.out, conv.out)
        changed = True
    return changed
