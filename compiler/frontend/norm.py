"""BatchNormalization (inference form; folded into the preceding conv by fold-batchnorm, or made a
depthwise conv by batchnorm-to-conv). Its parameters may be constants or dequantized constants."""

from __future__ import annotations

from .context import ImportContext, NodeView, handler


@handler("BatchNormalization")
def batchnorm(ctx: ImportContext, node: NodeView):
    if node.attr("training_mode", 0):
        raise ctx.error(node, "training_mode=1 is not supported")
    if len(node.output_names) > 1 and any(node.output_names[1:]):
        raise ctx.error(node, "BatchNormalization running-statistics outputs are not supported")
    x, scale, bias, mean, var = node.inputs[:5]
    if len(x.type.shape) < 2:
        raise ctx.error(node, "BatchNormalization needs a channel axis")
    return [ctx.emit("batchnorm", [x, scale, bias, mean, var], {"epsilon": float(node.attr("epsilon", 1e-5))}, name=node.name)]
