"""Conv and QLinearConv (2-D; depthwise and grouped through ``group``)."""

from __future__ import annotations

import math

from .context import ImportContext, NodeView, handler
from .qoperator import bias_dq, dq, q


def conv_attrs(ctx: ImportContext, node: NodeView, x_shape, kernel) -> dict:
    if len(x_shape) != 4:
        raise ctx.error(node, f"unsupported: {len(x_shape) - 2}-D convolution (only 2-D Conv is supported)")
    kh, kw = kernel
    strides = list(node.attr("strides", [1, 1]))
    dil = list(node.attr("dilations", [1, 1]))
    pads = list(node.attr("pads", [0, 0, 0, 0]))
    auto = node.attr("auto_pad", "NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        pads = [0, 0, 0, 0]
        for i, (n, k, s, d) in enumerate(zip(x_shape[2:], (kh, kw), strides, dil)):
            total = max((math.ceil(n / s) - 1) * s + (k - 1) * d + 1 - n, 0)
            small, big = total // 2, total - total // 2
            pads[i], pads[i + 2] = (small, big) if auto == "SAME_UPPER" else (big, small)
    elif auto == "VALID":
        pads = [0, 0, 0, 0]
    elif auto != "NOTSET":
        raise ctx.error(node, f"auto_pad {auto} is not supported")
    if len(strides) != 2 or len(dil) != 2 or len(pads) != 4:
        raise ctx.error(node, "unsupported: only 2-D Conv is supported")
    if min(pads) < 0:
        raise ctx.error(node, "negative pads are not supported")
    return {"kernel": (kh, kw), "strides": tuple(strides), "dilations": tuple(dil),
            "pads": (pads[0], pads[1], pads[2], pads[3]), "layout": "NCHW"}


@handler("Conv")
def conv(ctx: ImportContext, node: NodeView):
    x, w = node.inputs[0], node.inputs[1]
    b = node.inputs[2] if len(node.inputs) > 2 else None
    ks = node.attr("kernel_shape") or list(w.type.shape[2:])
    if len(ks) != 2:
        raise ctx.error(node, f"unsupported: {len(ks)}-D convolution (only 2-D Conv is supported)")
    attrs = conv_attrs(ctx, node, x.type.shape, ks)
    attrs["groups"] = int(node.attr("group", 1))
    if x.type.shape[1] % attrs["groups"] or w.type.shape[0] % attrs["groups"]:
        raise ctx.error(node, f"group {attrs['groups']} does not divide the channels")
    return [ctx.emit("conv2d", [x, w, b], attrs, name=node.name)]


@handler("QLinearConv")
def qlinear_conv(ctx: ImportContext, node: NodeView):
    x, xs, xz, w, ws, wz, ys, yz = node.inputs[:8]
    b = node.inputs[8] if len(node.inputs) > 8 else None
    ks = node.attr("kernel_shape") or list(w.type.shape[2:])
    attrs = conv_attrs(ctx, node, x.type.shape, ks)
    attrs["groups"] = int(node.attr("group", 1))
    xf = dq(ctx, node, x, xs, xz, "x", axis=None)
    wf = dq(ctx, node, w, ws, wz, "w")
    bf = bias_dq(ctx, node, b, xs, ws)
    y = ctx.emit("conv2d", [xf, wf, bf], attrs, name=f"{node.name}_conv")
    return [q(ctx, node, y, ys, yz)]
