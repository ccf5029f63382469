"""Binary (int1) and ternary / 2-bit (int2) weights: kernels that add and subtract instead of multiply.

A binary weight w in {-1, +1} is one bit b (w = 2b - 1), so a dot product with inputs c is
``2 * sum(c where b) - sum(c)``. A 2-bit weight (two's complement, low bit l, high bit h) is
``w = l - 2h``, so the dot product is ``sum(c where l) - 2 * sum(c where h)``; ternary weights
{-1, 0, +1} are the case that never uses the code for -2.

Layout (``pack_rows``): each output channel's row starts on a byte boundary. Binary: 8 weights per
byte, weight t of the byte in bit t. 2-bit: 4 weights per byte as two bit planes, the low bits of
weights 0..3 in bits 0..3 and their high bits in bits 4..7 -- so that every nibble is a set of 4
inputs to sum. The same 2 bits per weight as the generic packing, arranged for these kernels.

Sums over a nibble's set of inputs come from tables: for every 4 inputs, the 16 subset sums are
built once (15 additions) and then serve every output channel (one lookup per nibble instead of 4
masked additions). Layers with fewer than ``TABLE_MIN_OUT`` outputs per input row (depthwise) add
masked inputs directly. Integer semantics are those of the interpreter's conv2d / dense (exact
int32 sums), so both ways are bit-exact with it; layers with a weight zero point or 16-bit inputs
keep the generic kernels, which unpack the generic packing element by element (mcuc_pack.h).
"""

from __future__ import annotations

import numpy as np

from ..ir.dtypes import DType
from ..ir.graph import Node
from . import cdata

LOWBIT = (DType.INT1, DType.INT2)
# Output channels per input row from which the nibble tables pay for their 15 additions per 4 inputs.
TABLE_MIN_OUT = 4


def applies(node: Node) -> bool:
    """True where the add/subtract kernels are used: 1- or 2-bit weights without a zero point on
    8-bit inputs."""
    x, w = node.inputs[0], node.inputs[1]
    wzp = np.asarray(node.attrs.get("w_zp", 0))
    return w.type.dtype in LOWBIT and x.type.dtype.bits == 8 and not np.any(wzp != 0)


def pack_rows(wvals: np.ndarray, dt: DType) -> tuple[np.ndarray, int]:
    """Rows [O, K] packed one after the other, each padded to whole bytes; (bytes, bytes per row)."""
    o, k = wvals.shape
    per = 8 // dt.bits
    row_bytes = -(-k // per)
    w = np.zeros((o, row_bytes * per), np.int64)
    w[:, :k] = wvals
    groups = w.reshape(o, row_bytes, per)
    if dt is DType.INT1:
        if w[:, :k].size and not np.all(np.abs(wvals) == 1):
            raise ValueError("int1 values must be -1 or +1")
        bits = (groups > 0).astype(np.int64)
        data = (bits << np.arange(8)).sum(axis=2)
    else:
        codes = groups & 3
        lo, hi = codes & 1, codes >> 1
        data = (lo << np.arange(4)).sum(axis=2) | ((hi << np.arange(4)).sum(axis=2) << 4)
    return data.astype(np.uint8).reshape(-1), row_bytes


def unpack_rows(data: np.ndarray, dt: DType, o: int, k: int) -> np.ndarray:
    """Inverse of ``pack_rows`` (for tests)."""
    per = 8 // dt.bits
    rb = -(-k // per)
    b = np.asarray(data, np.int64).reshape(o, rb, 1)
    if dt is DType.INT1:
        w = np.where((b >> np.arange(8)) & 1, 1, -1)
    else:
        w = ((b >> np.arange(4)) & 1) - 2 * ((b >> (np.arange(4) + 4)) & 1)
    return w.reshape(o, rb * per)[:, :k]


def _weights_and_epilogue(low, node: Node, cname: str, x, w, wvals, bias, o: int, acc_bound: int):
    from .lower import Arg

    dt = w.type.dtype
    data, row_bytes = pack_rows(wvals, dt)
    warr = low.array(cname, "w", "uint8_t", data)
    args = [low._in_arg(x, "x"), Arg("const uint8_t *w", "array", warr, "uint8_t")]
    has_bias = bool(np.any(bias != 0))
    if has_bias:
        args.append(Arg("const int32_t *bias", "array", low.array(cname, "bias", "int32_t", bias), "int32_t"))
    ep_args: list = []
    ep = low.epilogue(node, cname, o, ep_args, acc_bound=acc_bound)
    args += ep_args
    args.append(low._out_arg(node.out))
    k = wvals.shape[1]
    per = 8 // dt.bits
    params = {"K": k, "RB": row_bytes, "FULL": k // per, "TAIL": k % per, "BITS": dt.bits, "has_bias": has_bias,
              "ep": ep, "it": x.type.dtype.ctype, "ot": node.out.type.dtype.ctype,
              # Nibble tables: one per 4 inputs of the padded row (2 per byte binary, 1 per byte 2-bit).
              "NIB": row_bytes * per // 4}
    return args, params


def lower_conv(low, node: Node, idx: int, cname: str):
    """conv2d with 1-/2-bit weights (NHWC, any kernel, stride, dilation, padding, groups)."""
    from .lower import Arg

    low._nhwc(node)
    x, w = node.inputs[0], node.inputs[1]
    b = node.input(2)
    n, h, wd, c = x.type.shape
    o, kh, kw, cg = w.type.shape
    _, oh, ow, _ = node.out.type.shape
    grp = int(node.attrs["groups"])
    sh, sw = node.attrs["strides"]
    dh, dw = node.attrs.get("dilations", (1, 1))
    pt, pl, _, _ = node.attrs["pads"]
    xzp = int(node.attrs["x_zp"])
    wvals = np.asarray(w.const, np.int64).reshape(o, -1)
    bias = np.zeros(o, np.int64) if b is None else np.asarray(low._const(node, b), np.int64).reshape(-1)
    xdt = x.type.dtype
    xmax = max(abs(xdt.qmin - xzp), abs(xdt.qmax - xzp))
    k = kh * kw * cg
    # The sums of the kernel: 2 * sum(c) for binary, sum(c) + 2 * sum(c) for 2-bit.
    acc_bound = int(3 * k * xmax + (np.abs(bias).max() if bias.size else 0))
    low._check_acc(node, acc_bound)
    args, params = _weights_and_epilogue(low, node, cname, x, w, wvals, bias, o, acc_bound)
    args.append(Arg("void *scratch", "scratch"))
    table = o // grp >= TABLE_MIN_OUT
    params.update(N=n, H=h, W=wd, C=c, OH=oh, OW=ow, OC=o, KH=kh, KW=kw, CG=cg, G=grp, OCG=o // grp, SH=sh, SW=sw,
                  DH=dh, DW=dw, PT=pt, PL=pl, XZP=xzp, TABLE=table)
    fn = low._fn("conv2d", "lowbit", node, idx, "_w" + cdata.SUFFIX[w.type.dtype])
    # int16 window (x - x_zp), then int16 subset sums (|sum of 4| <= 4 * 255) of 16 per 4 inputs.
    scratch = 2 * k + (2 * 16 * params["NIB"] if table else 0)
    return low._layer(node, idx, cname, "lowbit.c.j2", fn, args, dict(params, OP="conv2d"), scratch=scratch)


def lower_dense(low, node: Node, idx: int, cname: str):
    """dense with 1-/2-bit weights; the input zero point folds into the bias (raw inputs summed)."""
    x, w = node.inputs[0], node.inputs[1]
    b = node.input(2)
    o, k = w.type.shape
    xzp = int(node.attrs["x_zp"])
    wvals = np.asarray(w.const, np.int64).reshape(o, k)
    bias = np.zeros(o, np.int64) if b is None else np.asarray(low._const(node, b), np.int64).reshape(-1)
    bias_eff = bias - xzp * wvals.sum(axis=1)
    xdt = x.type.dtype
    xabs = max(abs(xdt.qmin), abs(xdt.qmax))
    acc_bound = int(3 * k * xabs + (np.abs(bias_eff).max() if bias_eff.size else 0))
    low._check_acc(node, acc_bound)
    args, params = _weights_and_epilogue(low, node, cname, x, w, wvals, bias_eff, o, acc_bound)
    table = o >= TABLE_MIN_OUT
    params.update(ROWS=x.type.size // max(k, 1), O=o, TABLE=table)
    if table:
        from .lower import Arg

        args.append(Arg("void *scratch", "scratch"))
    fn = low._fn("dense", "lowbit", node, idx, "_w" + cdata.SUFFIX[w.type.dtype])
    # Raw inputs: |sum of 4| <= 4 * 255 (uint8) fits int16.
    return low._layer(node, idx, cname, "lowbit.c.j2", fn, args, dict(params, OP="dense"),
                      scratch=2 * 16 * params["NIB"] if table else 0)
