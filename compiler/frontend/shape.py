"""Data movement: Reshape, Flatten, Squeeze, Unsqueeze, Transpose, Concat, Pad, Identity, Dropout.

Shape operands must be constants; when an exporter computes them (Shape -> Gather -> Concat),
the handler asks for constant folding first (NeedConst) and is called again afterwards.
"""

from __future__ import annotations

import numpy as np

from ..ir.dtypes import DType
from .context import MS_DOMAIN, ImportContext, NeedConst, NodeView, handler
from .qoperator import dq, q


def _movable(x):
    if x.type.dtype in (DType.INT64, DType.BOOL):
        raise NeedConst("shape arithmetic")  # folded away by fold-constants
    if not x.type.shape and x.producer is not None and x.producer.op == "onnx":
        raise NeedConst("operand of unknown shape")


def reshape_to(ctx, node, x, shape, name=None):
    return ctx.emit("reshape", [x], {"shape": tuple(int(d) for d in shape)}, name=name or node.name)


@handler("Reshape")
def reshape(ctx: ImportContext, node: NodeView):
    x, s = node.inputs
    _movable(x)
    shape = ctx.const_ints(s, node, "shape")
    src = list(x.type.shape)
    out = []
    for i, d in enumerate(shape):
        if d == 0 and not node.attr("allowzero", 0):
            out.append(src[i])
        else:
            out.append(d)
    if out.count(-1) > 1:
        raise ctx.error(node, "more than one -1 in the target shape")
    if -1 in out:
        known = int(np.prod([d for d in out if d != -1])) or 1
        out[out.index(-1)] = int(np.prod(src)) // known
    if int(np.prod(out)) != int(np.prod(src)):
        raise ctx.error(node, f"cannot reshape {tuple(src)} to {tuple(out)}")
    return [reshape_to(ctx, node, x, out)]


@handler("Flatten")
def flatten(ctx: ImportContext, node: NodeView):
    x = node.inputs[0]
    _movable(x)
    ax = int(node.attr("axis", 1)) % max(len(x.type.shape), 1)
    s = x.type.shape
    return [reshape_to(ctx, node, x, (int(np.prod(s[:ax])), int(np.prod(s[ax:]))))]


@handler("Squeeze", "Unsqueeze")
def squeeze(ctx: ImportContext, node: NodeView):
    x = node.inputs[0]
    _movable(x)
    axes = ctx.const_ints(node.inputs[1] if len(node.inputs) > 1 else None, node, "axes", optional=True)
    s = list(x.type.shape)
    if node.op_type == "Squeeze":
        rank = len(s)
        axes = [a % rank for a in axes] if axes is not None else [i for i, d in enumerate(s) if d == 1]
        out = [d for i, d in enumerate(s) if i not in axes]
    else:
        if axes is None:
            raise ctx.error(node, "Unsqueeze needs axes")
        rank = len(s) + len(axes)
        axes = sorted(a % rank for a in axes)
        out = list(s)
        for a in axes:
            out.insert(a, 1)
    return [reshape_to(ctx, node, x, out)]


@handler("Transpose")
def transpose(ctx: ImportContext, node: NodeView):
    x = node.inputs[0]
    _movable(x)
    perm = node.attr("perm") or list(reversed(range(len(x.type.shape))))
    return [ctx.emit("transpose", [x], {"perm": tuple(int(p) for p in perm)}, name=node.name)]


@handler("Concat")
def concat(ctx: ImportContext, node: NodeView):
    for x in node.inputs:
        _movable(x)
    rank = len(node.inputs[0].type.shape)
    ax = int(node.attr("axis")) % rank
    return [ctx.emit("concat", list(node.inputs), {"axis": ax}, name=node.name)]


@handler("Pad")
def pad(ctx: ImportContext, node: NodeView):
    x = node.inputs[0]
    _movable(x)
    mode = node.attr("mode", "constant")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    if mode != "constant":
        raise ctx.error(node, f"Pad mode {mode!r} is not supported (constant is)")
    rank = len(x.type.shape)
    pads = ctx.const_ints(node.inputs[1], node, "pads")
    value = node.inputs[2] if len(node.inputs) > 2 else None
    v = 0.0 if value is None else np.asarray(ctx.const_array(value, node, "constant_value")).reshape(()).item()
    axes = ctx.const_ints(node.inputs[3] if len(node.inputs) > 3 else None, node, "axes", optional=True)
    axes = list(range(rank)) if axes is None else [a % rank for a in axes]
    full = [(0, 0)] * rank
    for i, a in enumerate(axes):
        full[a] = (pads[i], pads[i + len(axes)])
    if any(b < 0 or e < 0 for b, e in full):
        raise ctx.error(node, "negative pads (cropping) are not supported")
    return [ctx.emit("pad", [x], {"pads": tuple(full), "value": v}, name=node.name)]


@handler("Cast")
def cast(ctx: ImportContext, node: NodeView):
    """Exporters cast quantized tensors to their own type (torch.ao); other casts are shape arithmetic."""
    from ..ir.dtypes import ONNX_TO_DTYPE

    x = node.inputs[0]
    if x.is_const or x.type.dtype in (DType.INT64, DType.BOOL):
        raise NeedConst("cast of a constant")
    if ONNX_TO_DTYPE.get(int(node.attr("to"))) is x.type.dtype:
        return [x]
    raise ctx.error(node, f"a Cast of the {x.type.dtype.short} activation to another type is not supported")


@handler("Identity", "Dropout")
def identity(ctx: ImportContext, node: NodeView):
    if node.op_type == "Dropout" and len(node.output_names) > 1 and node.output_names[1]:
        raise ctx.error(node, "Dropout mask output is not supported")
    return [node.inputs[0]]


@handler("QLinearConcat", domain=MS_DOMAIN)
def qlinear_concat(ctx: ImportContext, node: NodeView):
    ys, yz = node.inputs[:2]
    rest = node.inputs[2:]
    if len(rest) % 3:
        raise ctx.error(node, "QLinearConcat inputs come in (tensor, scale, zero point) triples")
    xs = [dq(ctx, node, rest[i], rest[i + 1], rest[i + 2], f"x{i // 3}", axis=None) for i in range(0, len(rest), 3)]
    rank = len(xs[0].type.shape)
    y = ctx.emit("concat", xs, {"axis": int(node.attr("axis")) % rank}, name=f"{node.name}_concat")
    return [q(ctx, node, y, ys, yz)]
