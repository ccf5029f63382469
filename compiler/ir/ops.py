"""The operations of the IR: their inputs, attributes and shape rules.

The meaning of every op is its function in interpreter.py; docs/ir.md describes them in prose.
Ops are polymorphic in element type: before lowering, compute ops run on float32 with ONNX
semantics; after lowering they run on integers with the zero points, requantization and
activation clamp carried in their attributes. ``quantize`` / ``dequantize`` convert between the
two worlds and, after lowering, remain only at graph boundaries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from .dtypes import DType
from .graph import Node

# Attributes an integer compute op uses for its fused epilogue:
# out = clamp(requant(acc) + out_zp, act[0], act[1]).
EPILOGUE = ("requant", "out_zp", "act")


@dataclass(frozen=True)
class OpDef:
    name: str
    min_inputs: int
    max_inputs: int
    required: tuple[str, ...] = ()
    int_required: tuple[str, ...] = ()  # additionally required when the op runs on integers
    float_only: bool = False
    int_only: bool = False
    movement: bool = False  # moves / copies elements without arithmetic (any dtype)
    infer: Callable[[Node], list[tuple[int, ...]]] | None = field(default=None, compare=False)


def _out_hw(size, k, s, d, pb, pe):
    return (size + pb + pe - d * (k - 1) - 1) // s + 1


def spatial_out(node: Node, h: int, w: int) -> tuple[int, int]:
    kh, kw = node.attrs["kernel"]
    sh, sw = node.attrs["strides"]
    dh, dw = node.attrs.get("dilations", (1, 1))
    t, l, b, r = node.attrs["pads"]
    return _out_hw(h, kh, sh, dh, t, b), _out_hw(w, kw, sw, dw, l, r)


def _nchw(node: Node, shape):
    if node.attrs.get("layout", "NCHW") == "NHWC":
        n, h, w, c = shape
    else:
        n, c, h, w = shape
    return n, c, h, w


def _mk(node: Node, n, c, h, w):
    return (n, h, w, c) if node.attrs.get("layout", "NCHW") == "NHWC" else (n, c, h, w)


def _infer_conv(node: Node):
    n, _, h, w = _nchw(node, node.inputs[0].type.shape)
    o = node.inputs[1].type.shape[0]
    oh, ow = spatial_out(node, h, w)
    return [_mk(node, n, o, oh, ow)]


def _infer_pool(node: Node):
    n, c, h, w = _nchw(node, node.inputs[0].type.shape)
    oh, ow = spatial_out(node, h, w)
    return [_mk(node, n, c, oh, ow)]


def _infer_dense(node: Node):
    x = node.inputs[0].type.shape
    return [tuple(x[:-1]) + (node.inputs[1].type.shape[0],)]


def _infer_matmul(node: Node):
    a = node.inputs[0].type.shape
    b = node.inputs[1].type.shape
    m = b[-2] if node.attrs.get("trans_b") else b[-1]
    return [tuple(a[:-1]) + (m,)]


def _infer_same(node: Node):
    return [node.inputs[0].type.shape]


def _infer_broadcast(node: Node):
    import numpy as np

    return [tuple(np.broadcast_shapes(*(i.type.shape for i in node.inputs if i is not None)))]


def _infer_reshape(node: Node):
    return [tuple(node.attrs["shape"])]


def _infer_transpose(node: Node):
    s = node.inputs[0].type.shape
    return [tuple(s[p] for p in node.attrs["perm"])]


def _infer_concat(node: Node):
    shapes = [i.type.shape for i in node.inputs]
    ax = node.attrs["axis"] % len(shapes[0])
    out = list(shapes[0])
    out[ax] = sum(s[ax] for s in shapes)
    return [tuple(out)]


def _infer_pad(node: Node):
    s = node.inputs[0].type.shape
    return [tuple(d + b + e for d, (b, e) in zip(s, node.attrs["pads"]))]


def _infer_reduce(node: Node):
    s = list(node.inputs[0].type.shape)
    axes = [a % len(s) for a in node.attrs["axes"]]
    if node.attrs.get("keepdims", True):
        return [tuple(1 if i in axes else d for i, d in enumerate(s))]
    return [tuple(d for i, d in enumerate(s) if i not in axes)]


_CONV_ATTRS = ("kernel", "strides", "pads", "dilations", "groups", "layout")
_POOL_ATTRS = ("kernel", "strides", "pads", "layout")

OPS: dict[str, OpDef] = {
    d.name: d
    for d in [
        # boundary / quantization
        # Until the qparams are bound (pass bind-qparams), scale and zero point are inputs 2 and 3.
        OpDef("quantize", 1, 3, infer=_infer_same),
        OpDef("dequantize", 1, 3, infer=_infer_same),
        OpDef("requantize", 1, 1, required=("in_zp",) + EPILOGUE, int_only=True, infer=_infer_same),
        OpDef("clamp", 1, 1, required=("lo", "hi"), int_only=True, infer=_infer_same),
        # compute
        OpDef("conv2d", 2, 3, required=_CONV_ATTRS, int_required=("x_zp", "w_zp") + EPILOGUE, infer=_infer_conv),
        OpDef("dense", 2, 3, int_required=("x_zp", "w_zp") + EPILOGUE, infer=_infer_dense),
        OpDef("matmul", 2, 2, required=("trans_b",), float_only=True, infer=_infer_matmul),
        OpDef("add", 2, 2, int_required=("mode", "params"), infer=_infer_broadcast),
        OpDef("mul", 2, 2, int_required=("a_zp", "b_zp") + EPILOGUE, infer=_infer_broadcast),
        OpDef("sub", 2, 2, float_only=True, infer=_infer_broadcast),
        OpDef("div", 2, 2, float_only=True, infer=_infer_broadcast),
        OpDef("relu", 1, 1, float_only=True, infer=_infer_same),
        OpDef("clip", 1, 1, required=("lo", "hi"), float_only=True, infer=_infer_same),
        OpDef("sigmoid", 1, 1, float_only=True, infer=_infer_same),
        OpDef("tanh", 1, 1, float_only=True, infer=_infer_same),
        # Integer softmax: mode 'tflite' (TFLite Micro's fixed-point algorithm: mult, shift, diff_min)
        # or 'exact' (exp table + division, then the epilogue from Q31 probabilities).
        OpDef("softmax", 1, 1, required=("axis",), int_required=("mode",), infer=_infer_same),
        OpDef("batchnorm", 5, 5, required=("epsilon",), float_only=True, infer=_infer_same),
        OpDef("lut", 1, 1, required=("table",), int_only=True, infer=_infer_same),
        OpDef("maxpool", 1, 1, required=_POOL_ATTRS, infer=_infer_pool),
        OpDef("avgpool", 1, 1, required=_POOL_ATTRS + ("count_include_pad",),
              int_required=("in_zp", "sum_offset", "rounding") + EPILOGUE, infer=_infer_pool),
        OpDef("reduce_mean", 1, 1, required=("axes", "keepdims"), float_only=True, infer=_infer_reduce),
        # data movement (any element type)
        OpDef("reshape", 1, 1, required=("shape",), movement=True, infer=_infer_reshape),
        OpDef("transpose", 1, 1, required=("perm",), movement=True, infer=_infer_transpose),
        OpDef("concat", 1, 64, required=("axis",), movement=True, infer=_infer_concat),
        OpDef("pad", 1, 1, required=("pads", "value"), movement=True, infer=_infer_pad),
        # an ONNX node kept only until constant folding removes it (shape arithmetic, casts)
        OpDef("onnx", 0, 64, required=("op_type", "onnx_attrs", "opset")),
    ]
}

# Ops a graph may still contain after lowering, away from the boundaries.
INTEGER_OPS = {
    "requantize", "clamp", "conv2d", "dense", "add", "mul", "softmax", "lut", "maxpool", "avgpool",
    "reshape", "transpose", "concat", "pad",
}


def is_int_node(node: Node) -> bool:
    """True if the node computes on integers (its first input is an integer tensor)."""
    x = node.inputs[0] if node.inputs else None
    return x is not None and x.type.dtype is not DType.FLOAT32
