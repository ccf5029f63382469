"""The reference interpreter: the executable definition of every IR op.

Float ops follow ONNX semantics in float32 (what onnxruntime computes); integer ops accumulate
in int64 (exact: every product and partial sum of the supported types fits in 2^53, so the
float64 matrix products used for speed are exact too) and round and saturate only through
rounding.py. Generated C, firmware and every kernel variant must match this bit for bit.

Tensors carry the batch on axis 0: ``run`` takes N samples stacked there. Graphs that move the
batch axis (a reshape or transpose across it) are run one sample at a time.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from . import rounding
from .dtypes import DType
from .graph import Graph, Node
from .ops import OPS, is_int_node
from .quant import QParams

SEMANTICS: dict[str, Callable] = {}


def semantics(op: str):
    def deco(fn):
        if op not in OPS:
            raise KeyError(f"semantics for unknown op {op}")
        SEMANTICS[op] = fn
        return fn

    return deco


# --- helpers --------------------------------------------------------------------------------

def _out_dtype(node: Node) -> DType:
    return node.out.type.dtype


def _store(node: Node, y: np.ndarray, i: int = 0) -> np.ndarray:
    dt = node.outputs[i].type.dtype
    if dt is DType.FLOAT32:
        return np.asarray(y, dtype=np.float32)
    return np.asarray(y).astype(dt.np)


def _epilogue(node: Node, acc: np.ndarray, channel_axis: int) -> np.ndarray:
    """clamp(requant(acc) + out_zp, act), then the output type's range."""
    rq = node.attrs.get("requant")
    dt = _out_dtype(node)
    if rq is None:
        y = acc
    else:
        y = rq.apply(acc, channel_axis) + node.attrs["out_zp"]
    act = node.attrs.get("act")
    lo, hi = (act if act is not None else (dt.qmin, dt.qmax))
    return rounding.saturate(y, max(lo, dt.qmin), min(hi, dt.qmax))


def _channel_axis(node: Node) -> int:
    return 3 if node.attrs.get("layout") == "NHWC" else 1


def _to_nchw(node: Node, x):
    return np.transpose(x, (0, 3, 1, 2)) if node.attrs.get("layout") == "NHWC" else x


def _from_nchw(node: Node, y):
    return np.transpose(y, (0, 2, 3, 1)) if node.attrs.get("layout") == "NHWC" else y


def _windows(node: Node, x: np.ndarray, pad_value) -> np.ndarray:
    """[N, C, OH, OW, kh, kw] patches of an NCHW tensor (pads, dilations and strides applied)."""
    kh, kw = node.attrs["kernel"]
    sh, sw = node.attrs["strides"]
    dh, dw = node.attrs.get("dilations", (1, 1))
    t, l, b, r = node.attrs["pads"]
    xp = np.pad(x, ((0, 0), (0, 0), (t, b), (l, r)), constant_values=pad_value)
    ekh, ekw = (kh - 1) * dh + 1, (kw - 1) * dw + 1
    win = np.lib.stride_tricks.sliding_window_view(xp, (ekh, ekw), axis=(2, 3))
    win = win[:, :, ::sh, ::sw, ::dh, ::dw]
    return win


def _exact_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Integer matrix product through float64 BLAS: exact while |partial sums| < 2^53."""
    return np.matmul(a.astype(np.float64), b.astype(np.float64)).astype(np.int64)


# --- boundary -------------------------------------------------------------------------------

def _bcast(arr: np.ndarray, param: np.ndarray, axis: int | None):
    if axis is None:
        return param
    shape = [1] * arr.ndim
    shape[axis] = -1
    return param.reshape(shape)


def quantize_array(x: np.ndarray, q, dtype: DType, rng: tuple[int, int] | None = None) -> np.ndarray:
    """ONNX QuantizeLinear in float32 (as onnxruntime computes it), saturated to ``rng``."""
    x = np.asarray(x, dtype=np.float32)
    scale = _bcast(x, q.scale.astype(np.float32), q.axis)
    zp = _bcast(x, q.zero_point, q.axis)
    y = rounding.round_half_even_float(x / scale) + zp
    lo, hi = rng if rng is not None else (dtype.qmin, dtype.qmax)
    return rounding.saturate(y, lo, hi).astype(dtype.np)


def dequantize_array(x: np.ndarray, q) -> np.ndarray:
    x = np.asarray(x)
    scale = _bcast(x, q.scale.astype(np.float32), q.axis)
    zp = _bcast(x, q.zero_point, q.axis)
    return ((x.astype(np.int64) - zp).astype(np.float32) * scale).astype(np.float32)


def qparams_of(node, rank: int, scale=None, zp=None):
    """The node's quantization: bound on the tensor type, or (before bind-qparams) from its inputs."""
    if scale is None:
        return node.out.type.quant if node.op == "quantize" else node.inputs[0].type.quant
    scale = np.asarray(scale, dtype=np.float64)
    zp = np.zeros(scale.shape, np.int64) if zp is None else np.asarray(zp).astype(np.int64)
    if scale.size == 1 and zp.size == 1:
        return QParams(scale.reshape(()), zp.reshape(()), None)
    axis = node.attrs.get("axis", 1)
    return QParams(scale.reshape(-1), zp.reshape(-1), axis % rank if rank else 0)


@semantics("quantize")
def _quantize(node, x, scale=None, zp=None):
    return quantize_array(x, qparams_of(node, np.ndim(x), scale, zp), _out_dtype(node), node.attrs.get("range"))


@semantics("dequantize")
def _dequantize(node, x, scale=None, zp=None):
    return dequantize_array(x, qparams_of(node, np.ndim(x), scale, zp))


@semantics("requantize")
def _requantize(node, x):
    return _store(node, _epilogue(node, x.astype(np.int64) - node.attrs["in_zp"], -1 if node.attrs["requant"] is None or not node.attrs["requant"].per_channel else node.attrs.get("axis", 1)))


@semantics("clamp")
def _clamp(node, x):
    return _store(node, rounding.saturate(x, node.attrs["lo"], node.attrs["hi"]))


# --- compute --------------------------------------------------------------------------------

@semantics("conv2d")
def _conv2d(node, x, w, b=None):
    g = node.attrs["groups"]
    x = _to_nchw(node, x)
    if node.attrs.get("layout") == "NHWC":
        w = np.transpose(w, (0, 3, 1, 2))  # OHWI -> OIHW
    o = w.shape[0]
    if is_int_node(node):
        xzp = node.attrs["x_zp"]
        win = _windows(node, x.astype(np.int64), xzp) - xzp
        wc = w.astype(np.int64) - np.asarray(node.attrs["w_zp"], np.int64).reshape(-1, 1, 1, 1)
    else:
        win = _windows(node, x.astype(np.float32), 0.0)
        wc = w.astype(np.float32)
    n, c, oh, ow, kh, kw = win.shape
    win = win.reshape(n, g, c // g, oh, ow, kh, kw).transpose(0, 1, 3, 4, 2, 5, 6).reshape(n, g, oh * ow, -1)
    wg = wc.reshape(g, o // g, -1).transpose(0, 2, 1)  # [g, K, O/g]
    if is_int_node(node):
        acc = _exact_matmul(win, wg[None])  # [n, g, oh*ow, O/g]
    else:
        acc = np.matmul(win, wg[None]).astype(np.float32)
    acc = acc.transpose(0, 1, 3, 2).reshape(n, o, oh, ow)
    if b is not None:
        acc = acc + b.reshape(1, -1, 1, 1).astype(acc.dtype)
    if is_int_node(node):
        acc = _epilogue(node, acc, 1)
    return _store(node, _from_nchw(node, acc))


@semantics("dense")
def _dense(node, x, w, b=None):
    if is_int_node(node):
        acc = _exact_matmul(x.astype(np.int64) - node.attrs["x_zp"],
                            (w.astype(np.int64) - np.asarray(node.attrs["w_zp"], np.int64).reshape(-1, 1)).T)
        if b is not None:
            acc = acc + b.astype(np.int64)
        return _store(node, _epilogue(node, acc, -1))
    y = np.matmul(x.astype(np.float32), w.astype(np.float32).T)
    if b is not None:
        y = y + b.astype(np.float32)
    return _store(node, y)


@semantics("matmul")
def _matmul(node, a, b):
    bb = np.swapaxes(b, -1, -2) if node.attrs["trans_b"] else b
    return _store(node, np.matmul(a.astype(np.float32), bb.astype(np.float32)))


@semantics("add")
def _add(node, a, b):
    if not is_int_node(node):
        return _store(node, a.astype(np.float32) + b.astype(np.float32))
    p = node.attrs["params"]
    a = a.astype(np.int64) - p["a_zp"]
    b = b.astype(np.int64) - p["b_zp"]
    if node.attrs["mode"] == "tflite":
        # TFLite's int8 add: both inputs to a common fixed-point grid, sum, rescale.
        sa = rounding.multiply_by_quantized_multiplier(a << p["left_shift"], p["a_mult"], p["a_shift"])
        sb = rounding.multiply_by_quantized_multiplier(b << p["left_shift"], p["b_mult"], p["b_shift"])
        y = rounding.multiply_by_quantized_multiplier(sa + sb, p["out_mult"], p["out_shift"])
    else:
        # Power-of-two scales: exact alignment by left shifts, one rounding at the end.
        y = rounding.shift_round_half_even((a << p["a_shift"]) + (b << p["b_shift"]), p["out_shift"])
    dt = _out_dtype(node)
    lo, hi = p["act"]
    return _store(node, rounding.saturate(y + p["out_zp"], max(lo, dt.qmin), min(hi, dt.qmax)))


@semantics("mul")
def _mul(node, a, b):
    if not is_int_node(node):
        return _store(node, a.astype(np.float32) * b.astype(np.float32))
    acc = (a.astype(np.int64) - node.attrs["a_zp"]) * (b.astype(np.int64) - node.attrs["b_zp"])
    return _store(node, _epilogue(node, acc, -1))


@semantics("sub")
def _sub(node, a, b):
    return _store(node, a.astype(np.float32) - b.astype(np.float32))


@semantics("div")
def _div(node, a, b):
    return _store(node, a.astype(np.float32) / b.astype(np.float32))


@semantics("relu")
def _relu(node, x):
    return _store(node, np.maximum(x, np.float32(0)))


@semantics("clip")
def _clip(node, x):
    lo, hi = node.attrs["lo"], node.attrs["hi"]
    y = x
    if lo is not None:
        y = np.maximum(y, np.float32(lo))
    if hi is not None:
        y = np.minimum(y, np.float32(hi))
    return _store(node, y)


@semantics("sigmoid")
def _sigmoid(node, x):
    x = x.astype(np.float32)
    return _store(node, np.float32(1) / (np.float32(1) + np.exp(-x)))


@semantics("tanh")
def _tanh(node, x):
    return _store(node, np.tanh(x.astype(np.float32)))


@semantics("softmax")
def _softmax(node, x):
    ax = node.attrs["axis"]
    if is_int_node(node):
        if ax not in (-1, x.ndim - 1):
            raise ValueError("integer softmax runs along the last axis")
        dt = _out_dtype(node)
        if node.attrs.get("mode") == "exact":
            p = rounding.softmax_exact(x.astype(np.int64) - node.inputs[0].type.dtype.qmin, node.attrs["table"])
            return _store(node, _epilogue(node, p, -1))
        y = rounding.softmax_s8(x, node.attrs["mult"], node.attrs["shift"], node.attrs["diff_min"], dt.qmin, dt.qmax)
        return _store(node, y)
    x = x.astype(np.float32)
    e = np.exp(x - x.max(axis=ax, keepdims=True))
    return _store(node, e / e.sum(axis=ax, keepdims=True))


@semantics("batchnorm")
def _batchnorm(node, x, scale, bias, mean, var):
    shape = [1] * x.ndim
    shape[1] = -1
    inv = (scale / np.sqrt(var.astype(np.float32) + np.float32(node.attrs["epsilon"]))).astype(np.float32)
    y = (x.astype(np.float32) - mean.reshape(shape)) * inv.reshape(shape) + bias.reshape(shape)
    return _store(node, y)


@semantics("lut")
def _lut(node, x):
    dt = node.inputs[0].type.dtype
    table = np.asarray(node.attrs["table"])
    return _store(node, table[x.astype(np.int64) - dt.qmin])


@semantics("maxpool")
def _maxpool(node, x):
    dt = node.inputs[0].type.dtype
    pad = -np.inf if dt is DType.FLOAT32 else dt.qmin
    xx = _to_nchw(node, x)
    win = _windows(node, xx.astype(np.float64) if dt is DType.FLOAT32 else xx.astype(np.int64), pad)
    return _store(node, _from_nchw(node, win.max(axis=(-2, -1))))


@semantics("avgpool")
def _avgpool(node, x):
    xx = _to_nchw(node, x)
    kh, kw = node.attrs["kernel"]
    ones = np.ones((1, 1) + xx.shape[2:], dtype=np.int64)
    counts = _windows(node, ones, 0).sum(axis=(-2, -1))  # valid elements per window
    if node.attrs["count_include_pad"]:
        counts = np.full_like(counts, kh * kw)
    if not is_int_node(node):
        s = _windows(node, xx.astype(np.float32), 0.0).sum(axis=(-2, -1), dtype=np.float32)
        return _store(node, _from_nchw(node, s / counts.astype(np.float32)))
    rq = node.attrs["requant"]
    dt = _out_dtype(node)
    if rq is None:
        off = node.attrs["sum_offset"]
        # Padding counted in the average contributes real zeros, i.e. the input zero point.
        pad = node.attrs["in_zp"] - off
        s = _windows(node, xx.astype(np.int64) - off, pad).sum(axis=(-2, -1))
        y = rounding.round_div(s, counts, node.attrs["rounding"]) + off
    else:
        # One rounding of mean * (in_scale / out_scale), whatever the window's count.
        s = _windows(node, xx.astype(np.int64) - node.attrs["in_zp"], 0).sum(axis=(-2, -1))
        y = rounding.requantize_div(s, counts, rq.kind, rq.multiplier, rq.shift) + node.attrs["out_zp"]
    act = node.attrs.get("act") or (dt.qmin, dt.qmax)
    y = rounding.saturate(y, max(act[0], dt.qmin), min(act[1], dt.qmax))
    return _store(node, _from_nchw(node, y))


@semantics("reduce_mean")
def _reduce_mean(node, x):
    return _store(node, np.mean(x.astype(np.float32), axis=tuple(node.attrs["axes"]), keepdims=bool(node.attrs["keepdims"])))


# --- movement -------------------------------------------------------------------------------

@semantics("reshape")
def _reshape(node, x):
    shape = list(node.attrs["shape"])
    if x.shape and node.inputs[0].type.shape and x.shape[0] != node.inputs[0].type.shape[0]:
        shape[0] = x.shape[0]  # batched run: N in place of the batch dimension
    return _store(node, x.reshape(shape))


@semantics("transpose")
def _transpose(node, x):
    return _store(node, np.transpose(x, node.attrs["perm"]))


@semantics("concat")
def _concat(node, *xs):
    return _store(node, np.concatenate(xs, axis=node.attrs["axis"]))


@semantics("pad")
def _pad(node, x):
    return _store(node, np.pad(x, node.attrs["pads"], constant_values=node.attrs["value"]))


@semantics("onnx")
def _onnx(node, *xs):
    from onnx import helper
    from onnx.reference import ReferenceEvaluator

    names = [f"i{k}" for k in range(len(xs))]
    outs = [f"o{k}" for k in range(len(node.outputs))]
    onode = helper.make_node(node.attrs["op_type"], names, outs, domain=node.attrs.get("domain", ""), **node.attrs["onnx_attrs"])
    ev = ReferenceEvaluator(onode)
    res = ev.run(None, dict(zip(names, xs)))
    return tuple(res) if len(res) > 1 else res[0]


# --- driver ---------------------------------------------------------------------------------

def _batchable(g: Graph) -> bool:
    for n in g.nodes:
        if n.op == "reshape" and (not n.attrs["shape"] or n.attrs["shape"][0] != 1 or not n.inputs[0].type.shape or n.inputs[0].type.shape[0] != 1):
            return False
        if n.op == "transpose" and n.attrs["perm"][0] != 0:
            return False
        if n.op == "concat" and n.attrs["axis"] % len(n.out.type.shape) == 0:
            return False
        if n.op in ("reduce_mean",) and 0 in [a % len(n.inputs[0].type.shape) for a in n.attrs["axes"]]:
            return False
        if n.op == "onnx":
            return False
    return all(v.type.shape and v.type.shape[0] == 1 for v in g.inputs)


def eval_node(node: Node, args: list):
    fn = SEMANTICS.get(node.op)
    if fn is None:
        raise NotImplementedError(f"no semantics for op {node.op}")
    return fn(node, *[a for a in args])


def run(g: Graph, feeds: dict[str, np.ndarray], *, keep: bool = False) -> dict[str, np.ndarray]:
    """Run the graph on N stacked samples per input; returns outputs (and with ``keep``, every value)."""
    n = None
    for v in g.inputs:
        arr = np.asarray(feeds[v.name])
        n = arr.shape[0] if arr.ndim else 1
    if n is not None and n != 1 and not _batchable(g):
        per = [run(g, {k: np.asarray(a)[i:i + 1] for k, a in feeds.items()}, keep=keep) for i in range(n)]
        return {k: np.concatenate([p[k] for p in per], axis=0) for k in per[0]}
    env: dict[int, np.ndarray] = {}
    for v in g.inputs:
        env[v.id] = np.asarray(feeds[v.name])
    names: dict[str, np.ndarray] = {}
    for node in g.nodes:
        args = []
        for i in node.inputs:
            if i is None:
                args.append(None)
            elif i.is_const:
                args.append(i.const)
            else:
                args.append(env[i.id])
        if len(args) and args[-1] is None:
            while args and args[-1] is None:
                args.pop()
        res = eval_node(node, args)
        res = res if isinstance(res, tuple) else (res,)
        for o, r in zip(node.outputs, res):
            env[o.id] = r
            if keep:
                names[o.name] = r
    out = {o.name: (o.const if o.is_const else env[o.id]) for o in g.outputs}
    if keep:
        names.update(out)
        return names
    return out
