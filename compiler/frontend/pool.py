"""MaxPool, AveragePool, GlobalAveragePool / GlobalMaxPool, ReduceMean and QLinear pools."""

from __future__ import annotations


from .context import MS_DOMAIN, ImportContext, NodeView, handler
from .conv import conv_attrs
from .qoperator import dq, q


def _pool_attrs(ctx, node, x):
    ks = node.attr("kernel_shape")
    if ks is None or len(ks) != 2:
        raise ctx.error(node, "only 2-D pooling is supported")
    attrs = conv_attrs(ctx, node, x.type.shape, ks)
    if node.attr("ceil_mode", 0):
        # Ceil mode = floor mode with just enough extra padding at the end of each axis.
        t, l, b, r = attrs["pads"]
        extra = []
        for n, k, s, d, p0, p1 in zip(x.type.shape[2:], ks, attrs["strides"], attrs["dilations"], (t, l), (b, r)):
            eff = (k - 1) * d + 1
            out_ceil = -(-(n + p0 + p1 - eff) // s) + 1
            if (out_ceil - 1) * s >= n + p0:  # ONNX drops a last window that starts in the padding
                out_ceil -= 1
            extra.append(max((out_ceil - 1) * s + eff - (n + p0 + p1), 0))
        attrs["pads"] = (t, l, b + extra[0], r + extra[1])
        attrs["ceil_extra"] = tuple(extra)
    return attrs


@handler("MaxPool")
def maxpool(ctx: ImportContext, node: NodeView):
    if len(node.output_names) > 1 and node.output_names[1]:
        raise ctx.error(node, "MaxPool indices output is not supported")
    x = node.inputs[0]
    attrs = _pool_attrs(ctx, node, x)
    attrs.pop("ceil_extra", None)
    return [ctx.emit("maxpool", [x], attrs, name=node.name)]


@handler("AveragePool")
def avgpool(ctx: ImportContext, node: NodeView):
    x = node.inputs[0]
    attrs = _pool_attrs(ctx, node, x)
    cip = bool(node.attr("count_include_pad", 0))
    if attrs.pop("ceil_extra", (0, 0)) != (0, 0) and cip:
        raise ctx.error(node, "ceil_mode with count_include_pad is not supported")
    if attrs["dilations"] != (1, 1):
        raise ctx.error(node, "dilated average pooling is not supported")
    attrs["count_include_pad"] = cip
    return [ctx.emit("avgpool", [x], attrs, name=node.name)]


def global_avgpool_attrs(ctx, node, x) -> dict:
    if len(x.type.shape) != 4:
        raise ctx.error(node, f"global pooling needs a 4-D NCHW tensor, got rank {len(x.type.shape)}")
    h, w = x.type.shape[2:]
    return {"kernel": (h, w), "strides": (1, 1), "dilations": (1, 1), "pads": (0, 0, 0, 0), "layout": "NCHW"}


@handler("GlobalAveragePool")
def global_avgpool(ctx: ImportContext, node: NodeView):
    x = node.inputs[0]
    attrs = global_avgpool_attrs(ctx, node, x)
    attrs["count_include_pad"] = False
    return [ctx.emit("avgpool", [x], attrs, name=node.name)]


@handler("GlobalMaxPool")
def global_maxpool(ctx: ImportContext, node: NodeView):
    x = node.inputs[0]
    return [ctx.emit("maxpool", [x], global_avgpool_attrs(ctx, node, x), name=node.name)]


@handler("ReduceMean")
def reduce_mean(ctx: ImportContext, node: NodeView):
    x = node.inputs[0]
    if node.opset >= 18:
        axes = ctx.const_ints(node.inputs[1] if len(node.inputs) > 1 else None, node, "axes", optional=True)
    else:
        axes = node.attr("axes")
    rank = len(x.type.shape)
    axes = list(range(rank)) if axes is None else sorted(a % rank for a in axes)
    keep = bool(node.attr("keepdims", 1))
    if rank == 4 and axes == [2, 3]:
        # Exporters write global average pooling as ReduceMean over H and W.
        attrs = global_avgpool_attrs(ctx, node, x)
        attrs["count_include_pad"] = False
        y = ctx.emit("avgpool", [x], attrs, name=node.name)
        if not keep:
            y = ctx.emit("reshape", [y], {"shape": tuple(x.type.shape[:2])}, name=f"{node.name}_squeeze")
        return [y]
    return [ctx.emit("reduce_mean", [x], {"axes": tuple(axes), "keepdims": keep}, name=node.name)]


@handler("QLinearGlobalAveragePool", domain=MS_DOMAIN)
def qlinear_global_avgpool(ctx: ImportContext, node: NodeView):
    x, xs, xz, ys, yz = node.inputs[:5]
    xf = dq(ctx, node, x, xs, xz, "x", axis=None)
    if node.attr("channels_last", 0):
        xf = ctx.emit("transpose", [xf], {"perm": (0, 3, 1, 2)}, name=f"{node.name}_to_nchw")
    attrs = global_avgpool_attrs(ctx, node, xf)
    attrs["count_include_pad"] = False
    y = ctx.emit("avgpool", [xf], attrs, name=f"{node.name}_pool")
    if node.attr("channels_last", 0):
        y = ctx.emit("transpose", [y], {"perm": (0, 2, 3, 1)}, name=f"{node.name}_to_nhwc")
    return [q(ctx, node, y, ys, yz)]


@handler("QLinearAveragePool", domain=MS_DOMAIN)
def qlinear_avgpool(ctx: ImportContext, node: NodeView):
    x, xs, xz, ys, yz = node.inputs[:5]
    if node.attr("channels_last", 0):
        raise ctx.error(node, "channels_last QLinearAveragePool is not supported")
    xf = dq(ctx, node, x, xs, xz, "x", axis=None)
    attrs = _pool_attrs(ctx, node, xf)
    attrs.pop("ceil_extra", None)
    attrs["count_include_pad"] = bool(node.attr("count_include_pad", 0))
    y = ctx.emit("avgpool", [xf], attrs, name=f"{node.name}_pool")
    return [q(ctx, node, y, ys, yz)]

