"""Gemm, MatMul and their QOperator forms (QLinearMatMul, com.microsoft QGemm)."""

from __future__ import annotations

import numpy as np

from .context import MS_DOMAIN, ImportContext, NodeView, handler
from .qoperator import bias_dq, dq, q


def _gemm(ctx: ImportContext, node: NodeView, a, b, c):
    if node.attr("transA", 0):
        raise ctx.error(node, "transA=1 is not supported")
    if float(node.attr("alpha", 1.0)) != 1.0 or (c is not None and float(node.attr("beta", 1.0)) != 1.0):
        raise ctx.error(node, "alpha and beta other than 1 are not supported")
    if len(a.type.shape) != 2:
        raise ctx.error(node, f"Gemm input must be 2-D, got shape {a.type.shape}")
    y = ctx.emit("matmul", [a, b], {"trans_b": bool(node.attr("transB", 0))}, name=f"{node.name}")
    if c is not None:
        y = ctx.emit("add", [y, c], name=f"{node.name}_bias")
    return y


@handler("Gemm")
def gemm(ctx: ImportContext, node: NodeView):
    a, b = node.inputs[:2]
    c = node.inputs[2] if len(node.inputs) > 2 else None
    return [_gemm(ctx, node, a, b, c)]


@handler("MatMul")
def matmul(ctx: ImportContext, node: NodeView):
    a, b = node.inputs
    if len(b.type.shape) != 2:
        raise ctx.error(node, f"MatMul needs a 2-D second operand (weights), got shape {b.type.shape}")
    return [ctx.emit("matmul", [a, b], {"trans_b": False}, name=node.name)]


@handler("QLinearMatMul")
def qlinear_matmul(ctx: ImportContext, node: NodeView):
    a, a_s, a_z, b, b_s, b_z, y_s, y_z = node.inputs
    af = dq(ctx, node, a, a_s, a_z, "a", axis=None)
    axis = 1 if b_s.is_const and np.asarray(b_s.const).size > 1 else None  # per-column of B [K, M]
    bf = dq(ctx, node, b, b_s, b_z, "b", axis=axis)
    y = ctx.emit("matmul", [af, bf], {"trans_b": False}, name=f"{node.name}_mm")
    return [q(ctx, node, y, y_s, y_z)]


@handler("QGemm", domain=MS_DOMAIN)
def qgemm(ctx: ImportContext, node: NodeView):
    ins = node.inputs + [None] * (9 - len(node.inputs))
    a, a_s, a_z, b, b_s, b_z, c, y_s, y_z = ins[:9]
    if float(node.attr("alpha", 1.0)) != 1.0:
        raise ctx.error(node, "alpha other than 1 is not supported")
    trans_b = bool(node.attr("transB", 0))
    af = dq(ctx, node, a, a_s, a_z, "a", axis=None)
    axis = (0 if trans_b else 1) if b_s.is_const and np.asarray(b_s.const).size > 1 else None
    bf = dq(ctx, node, b, b_s, b_z, "b", axis=axis)
    cf = bias_dq(ctx, node, c, a_s, b_s)
    if node.attr("transA", 0):
        raise ctx.error(node, "transA=1 is not supported")
    y = ctx.emit("matmul", [af, bf], {"trans_b": trans_b}, name=f"{node.name}_mm")
    if cf is not None:
        y = ctx.emit("add", [y, cf], name=f"{node.name}_bias")
    if y_s is None:
        return [y]
    return [q(ctx, node, y, y_s, y_z)]
