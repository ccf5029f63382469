"""Add, Mul, Sub, Div, Relu, Clip and the QOperator QLinearAdd / QLinearMul."""

from __future__ import annotations

import numpy as np

from ..ir.dtypes import DType
from .context import MS_DOMAIN, ImportContext, NeedConst, NodeView, handler
from .qoperator import dq, q

_OPS = {"Add": "add", "Mul": "mul", "Sub": "sub", "Div": "div"}


@handler("Add", "Mul", "Sub", "Div")
def binary(ctx: ImportContext, node: NodeView):
    a, b = node.inputs
    if a.type.dtype is not DType.FLOAT32 or b.type.dtype is not DType.FLOAT32:
        # Integer arithmetic in ONNX graphs is shape bookkeeping: constant folding evaluates it.
        raise NeedConst("integer elementwise arithmetic")
    return [ctx.emit(_OPS[node.op_type], [a, b], name=node.name)]


@handler("Relu")
def relu(ctx: ImportContext, node: NodeView):
    x = node.inputs[0]
    if x.type.dtype.is_int:
        # ONNX Relu on integers is max(x, 0) on the stored values, whatever their zero point.
        return [ctx.emit("clamp", [x], {"lo": 0, "hi": x.type.dtype.qmax}, name=node.name)]
    return [ctx.emit("relu", [x], name=node.name)]


@handler("Clip")
def clip(ctx: ImportContext, node: NodeView):
    x = node.inputs[0]
    if node.opset < 11:
        lo, hi = node.attr("min"), node.attr("max")
    else:
        mn = node.inputs[1] if len(node.inputs) > 1 else None
        mx = node.inputs[2] if len(node.inputs) > 2 else None
        lo = None if mn is None else float(np.asarray(ctx.const_array(mn, node, "min")).reshape(()))
        hi = None if mx is None else float(np.asarray(ctx.const_array(mx, node, "max")).reshape(()))
    if x.type.dtype.is_int:
        # Brevitas / tf2onnx mark narrow or sub-8-bit ranges with a Clip on the integer tensor.
        dt = x.type.dtype
        ilo = dt.qmin if lo is None else int(np.ceil(lo))
        ihi = dt.qmax if hi is None else int(np.floor(hi))
        return [ctx.emit("clamp", [x], {"lo": max(ilo, dt.qmin), "hi": min(ihi, dt.qmax)}, name=node.name)]
    return [ctx.emit("clip", [x], {"lo": lo, "hi": hi}, name=node.name)]


def _qlinear_binary(ctx: ImportContext, node: NodeView, op: str):
    a, a_s, a_z, b, b_s, b_z, c_s, c_z = (node.inputs + [None] * 8)[:8]
    af = dq(ctx, node, a, a_s, a_z, "a", axis=None)
    bf = dq(ctx, node, b, b_s, b_z, "b", axis=None)
    y = ctx.emit(op, [af, bf], name=f"{node.name}_{op}")
    return [q(ctx, node, y, c_s, c_z)]


@handler("QLinearAdd", domain=MS_DOMAIN)
def qlinear_add(ctx: ImportContext, node: NodeView):
    return _qlinear_binary(ctx, node, "add")


@handler("QLinearMul", domain=MS_DOMAIN)
def qlinear_mul(ctx: ImportContext, node: NodeView):
    return _qlinear_binary(ctx, node, "mul")
