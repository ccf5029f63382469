"""lower-conv: conv2d / matmul on dequantized operands -> integer conv2d / dense with int32 output.

Pattern: ``conv2d(DQ(x), DQ(W), bias?)`` and ``matmul(DQ(x), DQ(W))`` with W a constant integer
tensor and x per-tensor quantized. The result is the exact int32 accumulator
``sum((x - x_zp) * (W - w_zp)) + bias`` whose scale is ``x_scale * w_scale[c]``; a dequantize of
it replaces the float op, so later patterns (requantize, activations) see the same QDQ shape.
Bias: a DequantizeLinear'd int32 whose scale equals the accumulator's (as quantizers emit it) is
used unchanged; any other bias (float, or another scale) is rounded half to even onto the
accumulator grid. Preconditions: bind-qparams (and fold-batchnorm) ran. Not supported: non-constant weights,
per-channel activations, weights quantized per channel along another axis than the outputs.
"""

from __future__ import annotations

import numpy as np

from ..errors import McucError
from ..ir.dtypes import DType
from ..ir.graph import Graph, TensorType, Value
from ..ir.quant import QParams
from ..ir import rounding
from . import register
from ._match import add_dq, bound_dq


def acc_quant(xq: QParams, wq: QParams, out_axis: int) -> QParams:
    s = float(xq.scale) * wq.scale.astype(np.float64)
    if wq.per_channel:
        return QParams(s.reshape(-1), np.zeros(s.size, np.int64), out_axis)
    return QParams(s.reshape(()), np.zeros((), np.int64), None)


def bias_to_acc(b: Value | None, acc_q: QParams, channels: int, where: str) -> np.ndarray | None:
    """The bias as int32 on the accumulator grid, or None if there is none."""
    if b is None:
        return None
    s_acc = np.broadcast_to(acc_q.scale, (channels,)).astype(np.float64)
    dq = bound_dq(b)
    if dq is not None and dq.inputs[0].is_const:
        bq = dq.inputs[0]
        real_scale = np.broadcast_to(bq.type.quant.scale, (channels,))
        vals = np.asarray(bq.const).astype(np.int64).reshape(-1) - np.broadcast_to(bq.type.quant.zero_point, (channels,))
        if np.allclose(real_scale, s_acc, rtol=1e-6, atol=0):
            out = vals
        else:
            out = rounding.round_half_even_float(vals * real_scale / s_acc)
    elif b.is_const and b.type.dtype is DType.FLOAT32:
        out = rounding.round_half_even_float(np.asarray(b.const, np.float64).reshape(-1) / s_acc)
    else:
        raise McucError("the bias must be a constant (float, or an integer with its own DequantizeLinear)", where=where)
    if out.size != channels:
        raise McucError(f"bias has {out.size} values for {channels} output channels", where=where)
    if out.min() < rounding.INT32_MIN or out.max() > rounding.INT32_MAX:
        raise McucError("bias does not fit int32 at the accumulator scale", where=where)
    return out.astype(np.int32)


def _operands(node):
    xdq, wdq = bound_dq(node.inputs[0]), bound_dq(node.inputs[1])
    if xdq is None or wdq is None or not wdq.inputs[0].is_const:
        return None
    x, w = xdq.inputs[0], wdq.inputs[0]
    if x.type.quant.per_channel or x.type.dtype.bits > 16:
        return None
    return x, w


def _where(g, node):
    return f"{g.meta.get('source', '<model>')}: node {node.name!r} ({node.op})"


@register("lower-conv")
def lower_conv(g: Graph, ctx) -> bool:
    changed = False
    for node in list(g.nodes):
        if node.op not in ("conv2d", "matmul") or node.out.type.dtype is not DType.FLOAT32:
            continue
        ops = _operands(node)
        if ops is None:
            continue
        x, w = ops
        wq = w.type.quant
        if node.op == "conv2d":
            o = w.type.shape[0]
            if wq.per_channel and wq.axis != 0:
                continue
            aq = acc_quant(x.type.quant, wq, 1)
            bias = bias_to_acc(node.input(2), aq, o, _where(g, node))
            wdata = np.asarray(w.const)
            w_zp = np.broadcast_to(wq.zero_point, (o,)).astype(np.int64)
            attrs = {k: node.attrs[k] for k in ("kernel", "strides", "dilations", "pads", "groups", "layout")}
            op = "conv2d"
        else:
            bshape = w.type.shape
            trans_b = node.attrs["trans_b"]
            o = bshape[0] if trans_b else bshape[1]
            out_axis_w = 0 if trans_b else 1
            if wq.per_channel and wq.axis != out_axis_w:
                continue
            aq = acc_quant(x.type.quant, wq, len(node.out.type.shape) - 1)
            bias = None
            wdata = np.asarray(w.const) if trans_b else np.asarray(w.const).T
            w_zp = np.broadcast_to(wq.zero_point, (o,)).astype(np.int64)
            attrs = {}
            op = "dense"
        wq_new = QParams(wq.scale, wq.zero_point, 0 if wq.per_channel else None)
        wv = g.const(f"{node.name}_w", np.ascontiguousarray(wdata), w.type.dtype, wq_new)
        ins = [x, wv]
        if bias is not None:
            ins.append(g.const(f"{node.name}_bias", bias, DType.INT32))
        attrs.update({"x_zp": int(x.type.quant.zero_point), "w_zp": w_zp, "requant": None, "out_zp": 0, "act": None})
        layout = node.out.type.layout
        acc = g.add_node(op, ins, [TensorType(node.out.type.shape, DType.INT32, aq, layout)], attrs,
                         name=node.name, before=node).out
        y = add_dq(g, acc, node, f"{node.name}_acc_dq")
        g.remove(node)
        g.replace_output_keep_name(node.out, y)
        changed = True
    return changed
