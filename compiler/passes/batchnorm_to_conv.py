"""batchnorm-to-conv: a BatchNormalization that follows no convolution becomes a depthwise 1x1 conv.

``batchnorm(DQ(a))`` computes ``k * (x - mean) + beta`` per channel with ``k = gamma / sqrt(var + eps)``.
As a float depthwise convolution its int16 weights are ``sign(k) * W`` dequantized with scale
``|k| / W`` and its bias is ``beta - k * mean``; lower-conv then lowers it like any conv. W (a power
of two up to 2^14) makes the accumulator grid W times finer than the input's, so rounding the
bias onto it moves outputs by at most 2^-15 of an input step; W shrinks only when the bias would
not fit int32 otherwise. (With int8 weights, W <= 127, about 0.5% of outputs flipped against
onnxruntime's float BatchNormalization.)
Preconditions: fold-batchnorm had its chance (a BN right after a conv folds into it instead).
"""

from __future__ import annotations

import numpy as np

from ..ir.dtypes import DType
from ..ir.graph import Graph, TensorType
from ..ir.quant import QParams
from . import register
from ._match import batchnorm_affine, bound_dq

MAX_WEIGHT = 1 << 14


@register("batchnorm-to-conv")
def batchnorm_to_conv(g: Graph, ctx) -> bool:
    changed = False
    for bn in list(g.nodes):
        if bn.op != "batchnorm" or bound_dq(bn.inputs[0]) is None or len(bn.inputs[0].type.shape) != 4:
            continue
        affine = batchnorm_affine(bn)
        if affine is None:
            continue
        k, offset = affine
        c = bn.inputs[0].type.shape[1]
        a = bound_dq(bn.inputs[0]).inputs[0]
        sa = float(np.max(a.type.quant.scale))
        offset_steps = float(np.max(np.abs(offset) / (sa * np.maximum(np.abs(k), 1e-30))))
        weight = MAX_WEIGHT
        while weight > 1 and (offset_steps + (1 << a.type.dtype.bits)) * weight >= 2**31:
            weight //= 2
        wq = QParams(np.maximum(np.abs(k), 1e-30) / weight, np.zeros(c, np.int64), 0)
        w = g.const(f"{bn.name}_w", (np.where(k < 0, -weight, weight)).reshape(c, 1, 1, 1), DType.INT16, wq)
        wf = g.add_node("dequantize", [w], [TensorType(w.type.shape, DType.FLOAT32)], {"axis": None},
                        name=f"{bn.name}_w_dq", before=bn).out
        b = g.const(f"{bn.name}_bias", offset.astype(np.float32), DType.FLOAT32)
        attrs = {"kernel": (1, 1), "strides": (1, 1), "dilations": (1, 1), "pads": (0, 0, 0, 0), "groups": c, "layout": "NCHW"}
        conv = g.add_node("conv2d", [bn.inputs[0], wf, b], [bn.out.type.with_()], attrs, name=bn.name, before=bn)
        g.remove(bn)
        g.replace_output_keep_name(bn.out, conv.out)
        changed = True
    return changed
