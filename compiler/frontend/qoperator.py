"""Shared expansion of QOperator nodes (QLinearConv, com.microsoft QLinearAdd, ...).

A QOperator node computes ``Q(op(DQ(a), DQ(b)))`` with its scales and zero points as inputs;
expanding it into exactly that keeps one lowering path for QDQ and QOperator graphs.
"""

from __future__ import annotations

import numpy as np

from ..ir.dtypes import DType
from ..ir.graph import Value
from .context import ImportContext, NodeView


def dq(ctx: ImportContext, node: NodeView, x: Value, scale: Value, zp: Value | None, tag: str, axis=None) -> Value:
    if x is None:
        return None
    if not x.type.dtype.is_int:
        raise ctx.error(node, f"{tag} must be an integer tensor")
    if axis is None and scale is not None and scale.is_const and np.asarray(scale.const).size > 1:
        axis = 0  # QLinearConv / QLinearMatMul per-channel weights: along the output channels
    return ctx.emit("dequantize", [x, scale, zp], {"axis": axis}, dtype=DType.FLOAT32, name=f"{node.name}_{tag}_dq")


def q(ctx: ImportContext, node: NodeView, v: Value, scale: Value, zp: Value | None) -> Value:
    dt = zp.type.dtype if zp is not None else DType.UINT8
    return ctx.emit("quantize", [v, scale, zp], {"axis": None}, dtype=dt, name=node.name)


def bias_dq(ctx: ImportContext, node: NodeView, b: Value | None, x_scale: Value, w_scale: Value) -> Value | None:
    """An int32 QOperator bias has the implied scale x_scale * w_scale (computed in float32, as ORT does)."""
    if b is None:
        return None
    xs = np.asarray(ctx.const_array(x_scale, node, "x_scale"), np.float32)
    ws = np.asarray(ctx.const_array(w_scale, node, "w_scale"), np.float32)
    s = (xs * ws).astype(np.float32).reshape(-1)
    axis = 0 if s.size > 1 else None
    sc = ctx.const(f"{node.name}_bias_scale", s if axis is not None else s.reshape(()))
    zc = ctx.const(f"{node.name}_bias_zp", np.zeros(s.shape if axis is not None else (), np.int32), DType.INT32)
    return ctx.emit("dequantize", [b, sc, zc], {"axis": axis}, dtype=DType.FLOAT32, name=f"{node.name}_bias_dq")
