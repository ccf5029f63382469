"""check-lowered: turn whatever lowering could not handle into a precise user error.

Runs last. A float model (no quantization at all) needs calibration; a float op left between
quantized ones is not quantized in the model (or is a pattern mcuc does not lower); a generic
ONNX node left means an operand that had to be constant was computed at run time.
Preconditions: every other pass ran. Changes nothing.
"""

from __future__ import annotations

from ..errors import McucError
from ..ir.graph import Graph
from ..ir.ops import INTEGER_OPS
from . import register


def _where(g: Graph, node) -> str:
    src = g.meta.get("source", "<model>")
    op = node.attrs.get("op_type", node.op) if node.op == "onnx" else node.op
    return f"{src}: node {node.name!r} ({op}, opset {g.meta.get('opset', '?')})"


@register("check-lowered")
def check_lowered(g: Graph, ctx) -> bool:
    if not any(n.op in ("quantize", "dequantize") for n in g.nodes) and not any(
            v.type.dtype.is_int for v in g.inputs):
        raise McucError("float model without quantization: it needs calibration "
                        "(quantize it first, e.g. with onnxruntime.quantization)",
                        where=g.meta.get("source", "<model>"))
    inputs = {v.id for v in g.inputs}
    outputs = {v.id for v in g.outputs}
    for n in g.nodes:
        if n.op == "onnx":
            raise McucError("this operator's operands must be constant (static shapes, constant "
                            "parameters) but are computed at run time", where=_where(g, n))
        if n.op == "quantize":
            if len(n.inputs) > 1:
                raise McucError("scale and zero point must be constants", where=_where(g, n))
            if n.inputs[0].id not in inputs:
                p = n.inputs[0].producer
                raise McucError(f"this float {p.op if p else 'value'} cannot be lowered to integers "
                                f"(it is not between DequantizeLinear and QuantizeLinear in a pattern mcuc supports)",
                                where=_where(g, p or n))
            continue
        if n.op == "dequantize":
            if len(n.inputs) > 1:
                raise McucError("scale and zero point must be constants", where=_where(g, n))
            if n.out.id not in outputs or g.consumers(n.out):
                c = g.consumers(n.out)
                raise McucError("this op computes in float: the model does not quantize its output "
                                "(or mcuc has no integer lowering for it)", where=_where(g, c[0] if c else n))
            continue
        if n.op not in INTEGER_OPS or not n.inputs[0].type.dtype.is_int:
            raise McucError("this op computes in float: the model does not quantize it "
                            "(or mcuc has no integer lowering for it)", where=_where(g, n))
    for v in g.inputs:
        if v.type.dtype.is_float:
            users = g.consumers(v)
            if any(u.op != "quantize" for u in users):
                u = next(u for u in users if u.op != "quantize")
                raise McucError(f"float input {v.name!r} is used before it is quantized", where=_where(g, u))
    return False
