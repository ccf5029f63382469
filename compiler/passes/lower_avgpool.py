"""lower-avgpool: ``Q(avgpool(DQ(a)))`` -> integer average pool.

Same input and output quantization: the integer mean of the window, rounded half away from
zero over the raw stored values in TFLite arithmetic (TFLite Micro's rule) or half to even over
zero-point-centred values in ONNX arithmetic (what onnxruntime's float mean then rounds to).
Different quantization, ONNX arithmetic: one rounding of ``sum * (a_scale / out_scale) / count``
per window (its own count where padding is excluded). TFLite arithmetic (TFLite Micro never
rescales in a pool): the mean on the input grid, then a requantization.
Preconditions: bind-qparams ran. Not supported: per-channel inputs.
"""

from __future__ import annotations

from ..ir.graph import Graph, TensorType
from . import register
from ._match import bound_dq, quantized_float_op
from .lower_requantize import make_requant, out_range


@register("lower-avgpool")
def lower_avgpool(g: Graph, ctx) -> bool:
    changed = False
    for node in list(g.nodes):
        pool = quantized_float_op(g, node, ("avgpool",))
        if pool is None:
            continue
        dq = bound_dq(pool.inputs[0])
        if dq is None or dq.inputs[0].type.quant.per_channel:
            continue
        a = dq.inputs[0]
        aq, oq = a.type.quant, node.out.type.quant
        act = out_range(node)
        base = {k: pool.attrs[k] for k in ("kernel", "strides", "dilations", "pads", "layout", "count_include_pad") if k in pool.attrs}
        base.setdefault("dilations", (1, 1))
        za = int(aq.zero_point)
        rounding_mode = "away" if ctx.convention == "tflite" else "even"
        offset = 0 if ctx.convention == "tflite" else za
        same = aq == oq and a.type.dtype is node.out.type.dtype
        if same:
            attrs = {**base, "in_zp": za, "sum_offset": offset, "rounding": rounding_mode, "requant": None, "out_zp": za, "act": act}
            new = g.add_node("avgpool", [a], [TensorType(node.out.type.shape, a.type.dtype, oq, pool.out.type.layout)],
                             attrs, name=pool.name, before=node)
        elif ctx.convention == "onnx":
            attrs = {**base, "in_zp": za, "sum_offset": offset, "rounding": rounding_mode,
                     "requant": make_requant(float(aq.scale) / float(oq.scale), ctx), "out_zp": int(oq.zero_point), "act": act}
            new = g.add_node("avgpool", [a], [TensorType(node.out.type.shape, node.out.type.dtype, oq, pool.out.type.layout)],
                             attrs, name=pool.name, before=node)
        else:
            attrs = {**base, "in_zp": za, "sum_offset": offset, "rounding": rounding_mode, "requant": None, "out_zp": za,
                     "act": (a.type.dtype.qmin, a.type.dtype.qmax)}
            mid = g.add_node("avgpool", [a], [TensorType(pool.out.type.shape, a.type.dtype, aq, pool.out.type.layout)],
                             attrs, name=pool.name, before=node)
            new = g.add_node("requantize", [mid.out], [node.out.type.with_()],
                             {"in_zp": za, "requant": make_requant(float(aq.scale) / float(oq.scale), ctx),
                              "out_zp": int(oq.zero_point), "act": act}, name=node.name, before=node)
        g.remove(node)
        g.remove(pool)
        g.replace_output_keep_name(node.out, new.out)
        changed = True
    return changed
