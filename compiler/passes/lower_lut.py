"""lower-lut: ``Q(f(DQ(a)))`` for an elementwise f (sigmoid, tanh) of an 8-bit tensor -> table lookup.

The table holds, for every input code, exactly what the float graph computes for it (the
interpreter's float32 f between the two quantization steps), so the lookup is the QDQ graph's
function itself. Needs per-tensor quantization and at most 8-bit inputs.

When the float graph feeds ``f``'s result to another float op instead of a quantize (onnxruntime
leaves Tanh unquantized, e.g. before an AveragePool), the result is first quantized to int16 with
scale 2^-15 (f's range is within [-1, 1]): the table then has 16-bit entries and the following op
sees f to within 2^-16, far below its own output step.
Preconditions: bind-qparams ran. Not supported: inputs wider than 8 bits (the table would be 64K+).
"""

from __future__ import annotations

import numpy as np

from ..ir.dtypes import DType
from ..ir.graph import Graph, TensorType
from ..ir.quant import QParams
from ..ir.interpreter import dequantize_array, eval_node, quantize_array
from . import register
from ._match import bound_dq, bound_q, quantized_float_op

ELEMENTWISE = ("sigmoid", "tanh")
INTERNAL = QParams(np.float64(2.0**-15), np.int64(0), None)


@register("lower-lut")
def lower_lut(g: Graph, ctx) -> bool:
    changed = _quantize_internal_results(g)
    for node in list(g.nodes):
        f = quantized_float_op(g, node, ELEMENTWISE)
        if f is None:
            continue
        dq = bound_dq(f.inputs[0])
        if dq is None:
            continue
        a = dq.inputs[0]
        if a.type.quant.per_channel or a.type.dtype.bits > 8:
            continue
        codes = np.arange(a.type.dtype.qmin, a.type.dtype.qmax + 1)
        real = dequantize_array(codes, a.type.quant)
        fx = eval_node(f, [real])
        table = quantize_array(fx, node.out.type.quant, node.out.type.dtype, node.attrs.get("range"))
        new = g.add_node("lut", [a], [TensorType(node.out.type.shape, node.out.type.dtype, node.out.type.quant, a.type.layout)],
                         {"table": table.astype(np.int64), "fn": f.op}, name=f.name, before=node)
        g.remove(node)
        g.remove(f)
        g.replace_output_keep_name(node.out, new.out)
        changed = True
    return changed


def _quantize_internal_results(g: Graph) -> bool:
    changed = False
    for f in list(g.nodes):
        if f.op not in ELEMENTWISE or not f.out.type.dtype.is_float or bound_dq(f.inputs[0]) is None:
            continue
        users = g.consumers(f.out)
        if (users and all(bound_q(u) for u in users)) or g.is_output(f.out):
            continue
        q = g.add_node("quantize", [f.out], [TensorType(f.out.type.shape, DType.INT16, INTERNAL, f.out.type.layout)],
                       {}, name=f"{f.name}_q16")
        dq = g.add_node("dequantize", [q.out], [f.out.type.with_()], {}, name=f"{f.name}_dq16")
        for u in users:
            u.inputs = [dq.out if i is f.out else i for i in u.inputs]
        changed = True
    return changed
