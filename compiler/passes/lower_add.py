"""lower-add: ``Q(add(DQ(a), DQ(b)))`` and ``Q(mul(DQ(a), DQ(b)))`` -> integer add / mul.

Add follows TFLite's int8 add (both inputs onto a common grid 2^20 finer than the larger input
scale, sum, one rescale: what TFLite Micro and CMSIS-NN compute); when the model follows ONNX
arithmetic and all three scales are powers of two it is exact instead: align by left shifts,
add, one half-to-even rounding shift. Mul multiplies the centred inputs and requantizes by
``a_scale * b_scale / out_scale``. Preconditions: bind-qparams ran. Not supported: per-channel inputs, adding two constants.
"""

from __future__ import annotations

from ..ir import rounding
from ..ir.graph import Graph, TensorType
from . import register
from ._match import bound_dq, quantized_float_op
from .lower_requantize import make_requant, out_range

TFLITE_LEFT_SHIFT = {8: 20, 16: 15}


def add_params(aq, bq, oq, act, in_bits: int, convention: str) -> tuple[str, dict]:
    sa, sb, so = float(aq.scale), float(bq.scale), float(oq.scale)
    common = {"a_zp": int(aq.zero_point), "b_zp": int(bq.zero_point), "out_zp": int(oq.zero_point), "act": tuple(act)}
    ea, eb, eo = (rounding.pow2_exponent(s) for s in (sa, sb, so))
    if convention == "onnx" and None not in (ea, eb, eo):
        e_min = min(ea, eb)
        if max(ea - e_min, eb - e_min) <= 16:
            return "shift", {**common, "a_shift": ea - e_min, "b_shift": eb - e_min, "out_shift": eo - e_min}
    left = TFLITE_LEFT_SHIFT[8 if in_bits <= 8 else 16]
    twice_max = 2.0 * max(sa, sb)
    am, ash = rounding.quantize_multiplier(sa / twice_max)
    bm, bsh = rounding.quantize_multiplier(sb / twice_max)
    om, osh = rounding.quantize_multiplier(twice_max / ((1 << left) * so))
    return "tflite", {**common, "left_shift": left, "a_mult": am, "a_shift": ash, "b_mult": bm, "b_shift": bsh,
                      "out_mult": om, "out_shift": osh}


@register("lower-add")
def lower_add(g: Graph, ctx) -> bool:
    changed = False
    for node in list(g.nodes):
        op = quantized_float_op(g, node, ("add", "mul"))
        if op is None:
            continue
        da, db = bound_dq(op.inputs[0]), bound_dq(op.inputs[1])
        if da is None or db is None:
            continue
        a, b = da.inputs[0], db.inputs[0]
        if a.type.quant.per_channel or b.type.quant.per_channel or a.is_const and b.is_const:
            continue
        act = out_range(node)
        oq = node.out.type.quant
        if op.op == "add":
            mode, params = add_params(a.type.quant, b.type.quant, oq, act, max(a.type.dtype.bits, b.type.dtype.bits), ctx.convention)
            attrs = {"mode": mode, "params": params}
        else:
            ratio = float(a.type.quant.scale) * float(b.type.quant.scale) / float(oq.scale)
            attrs = {"a_zp": int(a.type.quant.zero_point), "b_zp": int(b.type.quant.zero_point),
                     "requant": make_requant(ratio, ctx), "out_zp": int(oq.zero_point), "act": act}
        new = g.add_node(op.op, [a, b], [TensorType(node.out.type.shape, node.out.type.dtype, oq, op.out.type.layout)],
                         attrs, name=op.name, before=node)
        g.remove(node)
        g.remove(op)
        g.replace_output_keep_name(node.out, new.out)
        changed = True
    return changed
