"""lower-softmax: ``Q(softmax(DQ(a)))`` -> an integer softmax along the last axis.

TFLite arithmetic: TFLite Micro's fixed-point softmax, which reads int8 and writes int8 with
scale 1/256 and zero point -128 (other types reached through requantizations around it). ONNX
arithmetic: the "exact" softmax -- a Q30 table of exp(-d * scale) for every difference d to the
row maximum, one integer division per element to Q31 probabilities, one requantization to the
output grid -- which agrees with onnxruntime's float softmax except at ties (TFLite's algorithm
is off by one step in a few percent of elements).
Preconditions: bind-qparams ran. Not supported: softmax along another axis than the last; 16-bit
inputs (a one-line error).
"""

from __future__ import annotations

import numpy as np

from ..errors import McucError
from ..ir import rounding
from ..ir.dtypes import DType
from ..ir.graph import Graph, TensorType
from ..ir.quant import QParams
from . import register
from ._match import bound_dq, quantized_float_op
from .lower_requantize import make_requant, out_range

S8_OUT = QParams(np.float64(1.0 / 256), np.int64(-128), None)


@register("lower-softmax")
def lower_softmax(g: Graph, ctx) -> bool:
    changed = False
    for node in list(g.nodes):
        sm = quantized_float_op(g, node, ("softmax",))
        if sm is None:
            continue
        dq = bound_dq(sm.inputs[0])
        if dq is None or dq.inputs[0].type.quant.per_channel:
            continue
        if sm.attrs["axis"] != len(sm.out.type.shape) - 1:
            continue
        a = dq.inputs[0]
        aq = a.type.quant
        if a.type.dtype.bits > 8:
            # Both integer softmaxes read 8 bits (a 2^bits-entry exp table, TFLite's int8 kernel);
            # requantizing a 16-bit input to 8 bits at its own scale would saturate it.
            raise McucError(f"softmax of a {a.type.dtype.bits}-bit input ({a.type.dtype.short}) is not supported "
                            "(mcuc's integer softmax reads 8-bit inputs); quantize the softmax input to int8 or uint8",
                            where=f"{g.meta.get('source', '<model>')}: node {sm.name!r} (softmax)")
        if ctx.convention == "onnx" and a.type.dtype.bits <= 8:
            oq = node.out.type.quant
            attrs = {"axis": sm.attrs["axis"], "mode": "exact",
                     "table": rounding.softmax_exp_table(float(aq.scale), a.type.dtype.bits),
                     "requant": make_requant(2.0**-31 / float(oq.scale), ctx), "out_zp": int(oq.zero_point),
                     "act": out_range(node)}
            y = g.add_node("softmax", [a], [node.out.type.with_()], attrs, name=sm.name, before=node).out
            g.remove(node)
            g.remove(sm)
            g.replace_output_keep_name(node.out, y)
            changed = True
            continue
        x = a
        if a.type.dtype is not DType.INT8:
            s8 = QParams(aq.scale, np.int64(0), None)
            x = g.add_node("requantize", [a], [TensorType(a.type.shape, DType.INT8, s8, a.type.layout)],
                           {"in_zp": int(aq.zero_point), "requant": make_requant(1.0, ctx), "out_zp": 0, "act": (-128, 127)},
                           name=f"{sm.name}_in", before=node).out
        mult, shift, diff_min = rounding.softmax_params(float(aq.scale))
        oq = node.out.type.quant
        direct = oq == S8_OUT and node.out.type.dtype is DType.INT8 and out_range(node) == (-128, 127)
        y = g.add_node("softmax", [x], [TensorType(a.type.shape, DType.INT8, S8_OUT, a.type.layout)],
                       {"axis": sm.attrs["axis"], "mode": "tflite", "mult": mult, "shift": shift, "diff_min": diff_min},
                       name=sm.name, before=node).out
        if not direct:
            y = g.add_node("requantize", [y], [node.out.type.with_()],
                           {"in_zp": -128, "requant": make_requant((1.0 / 256) / float(oq.scale), ctx),
                            "out_zp": int(oq.zero_point), "act": out_range(node)}, name=node.name, before=node).out
        g.remove(node)
        g.remove(sm)
        g.replace_output_keep_name(node.out, y)
        changed = True
    return changed
