"""Sigmoid, Tanh, Softmax and their QOperator forms."""

from __future__ import annotations

from .context import MS_DOMAIN, ImportContext, NodeView, handler
from .qoperator import dq, q


def _float_input(ctx, node):
    x = node.inputs[0]
    if not x.type.dtype.is_float:
        raise ctx.error(node, f"{node.op_type} on an integer tensor is not supported")
    return x


@handler("Sigmoid")
def sigmoid(ctx: ImportContext, node: NodeView):
    return [ctx.emit("sigmoid", [_float_input(ctx, node)], name=node.name)]


@handler("Tanh")
def tanh(ctx: ImportContext, node: NodeView):
    return [ctx.emit("tanh", [_float_input(ctx, node)], name=node.name)]


def _softmax_axis(ctx, node, rank, opset):
    default = -1 if opset >= 13 else 1
    ax = int(node.attr("axis", default))
    ax = ax % rank
    if opset < 13 and ax != rank - 1:
        raise ctx.error(node, "Softmax before opset 13 flattens from `axis`; only the last axis is supported")
    return ax


@handler("Softmax")
def softmax(ctx: ImportContext, node: NodeView):
    x = _float_input(ctx, node)
    ax = _softmax_axis(ctx, node, len(x.type.shape), node.opset)
    return [ctx.emit("softmax", [x], {"axis": ax}, name=node.name)]


@handler("QLinearSoftmax", domain=MS_DOMAIN)
def qlinear_softmax(ctx: ImportContext, node: NodeView):
    x, xs, xz, ys, yz = node.inputs[:5]
    xf = dq(ctx, node, x, xs, xz, "x", axis=None)
    ax = _softmax_axis(ctx, node, len(x.type.shape), int(node.attr("opset", 13)))
    y = ctx.emit("softmax", [xf], {"axis": ax}, name=f"{node.name}_softmax")
    return [q(ctx, node, y, ys, yz)]


@handler("QLinearSigmoid", domain=MS_DOMAIN)
def qlinear_sigmoid(ctx: ImportContext, node: NodeView):
    x, xs, xz, ys, yz = node.inputs[:5]
    xf = dq(ctx, node, x, xs, xz, "x", axis=None)
    return [q(ctx, node, ctx.emit("sigmoid", [xf], name=f"{node.name}_sigmoid"), ys, yz)]
