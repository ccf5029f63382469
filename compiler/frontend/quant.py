"""QuantizeLinear, DequantizeLinear and QONNX's Quant: the explicit quantization of QDQ graphs."""

from __future__ import annotations

import numpy as np

from ..ir.dtypes import ONNX_TO_DTYPE, DType
from .context import ImportContext, NodeView, handler


def _check_block(ctx: ImportContext, node: NodeView):
    if node.attr("block_size", 0):
        raise ctx.error(node, "blocked quantization (block_size) is not supported")


def _axis(ctx, node, x, scale):
    if scale is not None and np.asarray(scale.const if scale.is_const else 0).size > 1:
        rank = len(x.type.shape)
        ax = int(node.attr("axis", 1))
        if not -rank <= ax < rank:
            raise ctx.error(node, f"axis {ax} is out of range for a rank-{rank} tensor")
        return ax % rank
    return None


@handler("QuantizeLinear")
def quantize_linear(ctx: ImportContext, node: NodeView):
    _check_block(ctx, node)
    x, scale, zp = (node.inputs + [None, None])[:3]
    if "output_dtype" in node.attrs and node.attr("output_dtype"):
        dt = ONNX_TO_DTYPE.get(node.attr("output_dtype"))
    elif zp is not None:
        dt = zp.type.dtype
    else:
        dt = DType.UINT8
    if dt is None or not dt.is_int or dt.bits > 16:
        raise ctx.error(node, f"quantization to {dt.short if dt else 'this type'} is not supported (int4/uint4/int8/uint8/int16/uint16 are)")
    if x.type.dtype is not DType.FLOAT32:
        raise ctx.error(node, "QuantizeLinear input must be float32")
    attrs = {"axis": _axis(ctx, node, x, scale)}
    return [ctx.emit("quantize", [x, scale, zp], attrs, dtype=dt, name=node.name)]


@handler("DequantizeLinear")
def dequantize_linear(ctx: ImportContext, node: NodeView):
    _check_block(ctx, node)
    x, scale, zp = (node.inputs + [None, None])[:3]
    if not x.type.dtype.is_int or x.type.dtype.bits > 32:
        raise ctx.error(node, f"DequantizeLinear of {x.type.dtype.short} is not supported")
    x = _narrow_binary(ctx, x, zp)
    attrs = {"axis": _axis(ctx, node, x, scale)}
    return [ctx.emit("dequantize", [x, scale, zp], attrs, dtype=DType.FLOAT32, name=node.name)]


def _narrow_binary(ctx: ImportContext, x, zp):
    """ONNX has no 1-bit type: binary weights arrive as INT2 constants holding only -1 and +1
    (zero point 0). They become int1 constants, which mcuc stores one bit per weight."""
    if not (x.is_const and x.type.dtype is DType.INT2 and x.const.size):
        return x
    if zp is not None and (not zp.is_const or np.any(np.asarray(zp.const) != 0)):
        return x
    v = np.asarray(x.const)
    if not np.all((v == 1) | (v == -1)):
        return x
    return ctx.const(f"{x.name}_int1", v.astype(np.int8), DType.INT1)


@handler("Quant", domain="qonnx")
def qonnx_quant(ctx: ImportContext, node: NodeView):
    """QONNX Quant = dequantize(clip(round(x / scale + zeropt))) with the range of the bit width."""
    x, scale, zeropt, bitwidth = node.inputs
    bits = ctx.const_array(bitwidth, node, "bitwidth")
    bits_f = float(np.asarray(bits).reshape(-1)[0])
    if bits_f != int(bits_f) or not 1 <= bits_f <= 32 or (bits_f > 16 and not x.is_const):
        raise ctx.error(node, f"bit width {bits_f:g} is not supported (integer widths 1..16 are, and up to 32 for constants such as biases)")
    bits = int(bits_f)
    signed = bool(node.attr("signed", 1))
    narrow = bool(node.attr("narrow", 0))
    mode = node.attr("rounding_mode", "ROUND")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    if mode.upper() not in ("ROUND", "HALF_EVEN"):
        raise ctx.error(node, f"rounding_mode {mode} is not supported (ROUND is)")
    s = ctx.const_array(scale, node, "scale")
    z = ctx.const_array(zeropt, node, "zeropt")
    if np.any(np.asarray(z) != np.round(np.asarray(z))):
        raise ctx.error(node, "a fractional zero point is not supported")
    if bits <= 2 and x.is_const:
        # 1- and 2-bit weights (ternary with narrow=1): int2 constants, packed 4 per byte in flash.
        dt = DType.INT2 if signed or bits == 1 else DType.UINT4
    elif bits <= 2:
        # Activations of 1 or 2 bits keep their range in 8-bit storage: kernels read bytes.
        dt = DType.INT8 if signed else DType.UINT8
    else:
        dt = DType.for_range(bits, signed)
    lo = -(1 << (bits - 1)) if signed else 0
    hi = (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1
    if narrow:
        lo += 1 if signed else 0
        hi -= 0 if signed else 1
    s_arr, z_arr = np.asarray(s, np.float32), np.asarray(z)
    axis = _qonnx_axis(ctx, node, x, s_arr, z_arr)
    sc = ctx.const(f"{node.name}_scale", s_arr.reshape(-1) if axis is not None else s_arr.reshape(()))
    zc = ctx.const(f"{node.name}_zp", np.broadcast_to(z_arr.reshape(-1), (s_arr.size,)).astype(dt.np) if axis is not None else z_arr.reshape(()).astype(dt.np), dt)
    q = ctx.emit("quantize", [x, sc, zc], {"axis": axis, "range": (lo, hi)}, dtype=dt, name=node.name)
    return [ctx.emit("dequantize", [q, sc, zc], {"axis": axis}, dtype=DType.FLOAT32, name=f"{node.name}_dq")]


def _qonnx_axis(ctx: ImportContext, node: NodeView, x, s_arr: np.ndarray, z_arr: np.ndarray):
    """QONNX broadcasts scale against x (e.g. [C,1,1,1] for weights): the channel axis, or None."""
    if s_arr.size <= 1 and z_arr.size <= 1:
        return None
    ref = s_arr if s_arr.size > 1 else z_arr
    rank = len(x.type.shape)
    full = (1,) * (rank - ref.ndim) + tuple(ref.shape)
    big = [i for i, d in enumerate(full) if d > 1]
    if len(big) != 1:
        raise ctx.error(node, "scale must be per tensor or vary along one axis")
    return big[0]


@handler("BipolarQuant", domain="qonnx")
def bipolar_quant(ctx: ImportContext, node: NodeView):
    """QONNX BipolarQuant = scale * (x >= 0 ? +1 : -1). On constant weights: int1 weights (one bit
    each in flash) and a dequantize by the (per-channel) scale, which lowering folds into the
    requantization. Binary activations would need xnor/popcount kernels over 1-bit tensors."""
    x, scale = node.inputs[:2]
    if not x.is_const:
        raise ctx.error(node, "binary activations (BipolarQuant of a computed tensor) are not supported; "
                              "binary weights (BipolarQuant of an initializer) are")
    s_arr = np.asarray(ctx.const_array(scale, node, "scale"), np.float32)
    axis = _qonnx_axis(ctx, node, x, s_arr, np.zeros(1))
    signs = np.where(np.asarray(x.const) >= 0, 1, -1).astype(np.int8)
    q = ctx.const(f"{node.name}_int1", signs, DType.INT1)
    sc = ctx.const(f"{node.name}_scale", s_arr.reshape(-1) if axis is not None else s_arr.reshape(()))
    return [ctx.emit("dequantize", [q, sc], {"axis": axis}, dtype=DType.FLOAT32, name=f"{node.name}_dq")]
