"""From a verified integer IR graph to layers: one specialized kernel call per node.

For each node this module picks the kernel variant and template, computes every constant the
kernel needs (shapes, strides, pads, zero points, requantization, folded biases) and the
arrays it reads from flash. Templates only print what is computed here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import McucError
from ..ir import interpreter, rounding
from ..ir.dtypes import DType
from ..ir.graph import Graph, Node, Value
from ..ir.quant import QParams, Requant
from ..ir.verifier import verify
from . import cdata, lowbit
from .names import Namer

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1
# Largest |accumulator| a kernel may reach; beyond it int32 accumulation could overflow.
ACC_LIMIT = INT32_MAX
# Extra flash (bytes) a model may spend on conv weights stored pre-extended as int16 for DSP
# kernels (the layout doubles their size). Each pre-extended weight byte saves about 1/8 cycle
# per output pixel it is used for (two SXTB16 per weight word of a 2-pixel x 3-channel block:
# 27 instead of 30 estimated cycles per 24 MACs), so only layers with at least
# PRE_EXTEND_MIN_PIXELS output pixels (>= 6 cycles saved per byte) take it, in layer order. On
# the MLPerf models that is every conv of KWS and IC (IC: 72 KB) and VWW up to its 12x12 layers
# (8 KB; its 6x6 and 3x3 pointwise layers hold 90% of its weights).
PRE_EXTEND_BUDGET = 96 * 1024
PRE_EXTEND_MIN_PIXELS = 48
# Flash (bytes) a model may spend on 256x256 output tables of 8-bit TFLite adds for the DSP
# family: the add becomes one lookup per element (~7 estimated cycles instead of ~18 for two
# operand tables and a requantization). 64 KB each, so only adds of at least ADD_TABLE_MIN
# elements take one, in layer order: IC's three residual adds fit, the 1 MB flash keeps room for
# the weights and the test inputs.
ADD_TABLE_BUDGET = 3 * 64 * 1024
ADD_TABLE_MIN = 2048
# Output channels from which the DSP kernels sign-extend a pixel pair once into scratch for all
# their 2x3 blocks (about 11 cycles per 4 inputs of the pair, 2 saved per block and 4 inputs;
# measured on the MLPerf layers: 0.2% faster at 16 channels, 3-4% at 32, 5% at 64).
XE_MIN_CHANNELS = 16


@dataclass
class ConstArray:
    symbol: str
    ctype: str
    data: np.ndarray  # flattened values, already packed for sub-byte types

    @property
    def nbytes(self) -> int:
        return int(max(1, self.data.size) * {"int8_t": 1, "uint8_t": 1, "int16_t": 2, "uint16_t": 2,
                                              "int32_t": 4, "uint32_t": 4, "int64_t": 8}[self.ctype])


@dataclass
class Arg:
    """One parameter of a kernel: its declaration, and what the call passes."""

    decl: str
    kind: str  # 'in' (activation input), 'out', 'array', 'scratch'
    ref: object = None  # Value for in/out, ConstArray for array
    ctype: str = ""


@dataclass
class IOTensor:
    value: Value  # the integer tensor the C API passes
    cname: str
    raw_name: str  # the graph's (ONNX) name, for the manifest and run_host only
    index: int

    @property
    def dtype(self) -> DType:
        return self.value.type.dtype

    @property
    def shape(self) -> tuple[int, ...]:
        return self.value.type.shape

    @property
    def quant(self) -> QParams | None:
        return self.value.type.quant


@dataclass
class Layer:
    index: int
    node: Node
    cname: str
    template: str  # template file name, looked up through the board's families
    func: str
    args: list[Arg]
    params: dict
    reads: list[Value]
    writes: Value
    scratch: int = 0
    inplace: tuple[int, ...] = ()  # input positions the output may overwrite
    alias: bool = False  # reshape: may share storage instead of copying

    @property
    def sig(self) -> list[str]:
        return [a.decl for a in self.args]


@dataclass
class Program:
    name: str
    inputs: list[IOTensor]
    outputs: list[IOTensor]
    layers: list[Layer]
    arrays: list[ConstArray] = field(default_factory=list)
    value_consts: dict[int, ConstArray] = field(default_factory=dict)  # constant activations
    namer: Namer | None = None


def _where(node: Node) -> str:
    return f"node {node.name!r} ({node.op})"


def _fail(node: Node, msg: str):
    raise McucError(msg, where=_where(node))


def _lit(v: int) -> str:
    return cdata.c_int(int(v), "int32_t")


def _act_range(node: Node, act, dt: DType) -> tuple[int, int]:
    lo, hi = act if act is not None else (dt.qmin, dt.qmax)
    lo = dt.qmin if lo is None else max(int(lo), dt.qmin)
    hi = dt.qmax if hi is None else min(int(hi), dt.qmax)
    return lo, hi


def _strides(shape) -> list[int]:
    out, acc = [], 1
    for d in reversed(shape):
        out.append(acc)
        acc *= int(d)
    return out[::-1]


def collapse(out_shape, in_shapes, *, keep_last: bool = False, rank: int = 4):
    """Broadcast iteration space of at most ``rank`` dims: (dims, strides per input), dims
    padded in front with 1. Adjacent dims are merged where every operand stays contiguous."""
    r = len(out_shape)
    dims = list(out_shape)
    ops = []
    for s in in_shapes:
        s = [1] * (r - len(s)) + list(s)
        st = _strides(s)
        ops.append([0 if (s[d] == 1 and dims[d] != 1) else st[d] for d in range(r)])
    ops.append(_strides(dims))
    keep = [i for i in range(r) if dims[i] != 1]
    if keep_last and r and (r - 1) not in keep:
        keep.append(r - 1)
    dims = [dims[i] for i in keep]
    ops = [[o[i] for i in keep] for o in ops]
    d = len(dims) - 2
    while d >= 0:
        last_guard = keep_last and d == len(dims) - 2
        if not last_guard and all(o[d] == o[d + 1] * dims[d + 1] for o in ops):
            dims[d] *= dims[d + 1]
            for o in ops:
                o[d] = o[d + 1]
                del o[d + 1]
            del dims[d + 1]
        d -= 1
    if len(dims) > rank:
        return None
    pad = rank - len(dims)
    dims = [1] * pad + dims
    ops = [[0] * pad + o for o in ops]
    return dims, ops[:-1]


class Lowering:
    def __init__(self, graph: Graph, name: str, *, families=(), flash_bytes: int | None = None):
        self.g = graph
        self.name = name
        # The cortex-m family's kernels are the Armv7E-M DSP kernels (SXTB16/SMLAD): weights
        # laid out for them. Their portable fallback reads the same layout (mcuc_ld_s8x).
        self.dsp = "cortex-m" in families
        # The RISC-V kernels requantize through a table of per-channel constants (rv_rq below).
        self.riscv = "riscv" in families
        # Flash spent for speed stays a bounded share of the board's flash (1/8 for pre-extended
        # weights, 1/4 for add tables), so that a small part keeps room for the model itself.
        flash = flash_bytes if flash_bytes else 1 << 62
        self.pre_extend_left = min(PRE_EXTEND_BUDGET, flash // 8) if self.dsp else 0
        self.add_table_left = min(ADD_TABLE_BUDGET, flash // 4) if self.dsp else 0
        # Names model.c defines itself (run()'s locals and the model's own symbols).
        self.namer = Namer(reserved={name, "arena", "t0", f"{name}_arena", f"{name}_run", f"{name}_layer_cycles"})
        self.arrays: list[ConstArray] = []
        self.value_consts: dict[int, ConstArray] = {}
        self.layers: list[Layer] = []

    # -- constants ---------------------------------------------------------------------------
    def array(self, layer: str, what: str, ctype: str, data) -> ConstArray:
        sym = self.namer.name(("arr", layer, what), f"{layer}_{what}")
        a = ConstArray(sym, ctype, np.asarray(data).reshape(-1))
        self.arrays.append(a)
        return a

    def value_const(self, v: Value) -> ConstArray:
        if v.id not in self.value_consts:
            sym = self.namer.name(("val", v.id), f"c_{v.name}")
            a = ConstArray(sym, v.type.dtype.ctype, np.asarray(v.const).reshape(-1).astype(np.int64))
            self.arrays.append(a)
            self.value_consts[v.id] = a
        return self.value_consts[v.id]

    def weights(self, layer: str, w: Value) -> tuple[ConstArray, str]:
        dt = w.type.dtype
        if dt not in cdata.SUFFIX or dt in (DType.INT32, DType.INT64):
            raise McucError(f"weights of type {dt.short} are not supported", where=f"constant {w.name!r}")
        data = np.asarray(w.const).reshape(-1).astype(np.int64)
        if cdata.is_packed(dt):
            data = cdata.pack(data, dt)
        return self.array(layer, "w", cdata.storage_ctype(dt), data), cdata.loader(dt)

    # -- epilogue ----------------------------------------------------------------------------
    def _weighted_args(self, node: Node, cname: str, x: Value, w: Value, pre, wzp, bias, o: int, acc_bound: int):
        """The arguments every weighted kernel takes, in order: input, weights (pre-extended when the
        family lays them out so), bias when any is non-zero, weight zero points, epilogue, output."""
        args = [self._in_arg(x, "x")]
        warr, ld = pre or self.weights(cname, w)
        args.append(Arg(f"const {warr.ctype} *w", "array", warr, warr.ctype))
        has_bias = bool(np.any(bias != 0))
        if has_bias:
            args.append(Arg("const int32_t *bias", "array", self.array(cname, "bias", "int32_t", bias), "int32_t"))
        wz = self._wzp_param(cname, wzp, args)
        ep_args: list[Arg] = []
        ep = self.epilogue(node, cname, o, ep_args, acc_bound=acc_bound)
        args += ep_args
        args.append(self._out_arg(node.out))
        return args, ld, has_bias, wz, ep

    def epilogue(self, node: Node, layer: str, channels: int, args: list[Arg], *, wide: bool = False,
                 acc_bound: int | None = None) -> dict:
        """out = clamp(requant(acc) + zp, lo, hi) as plain values; per-channel arrays become args.

        ``acc_bound`` (a bound on |acc| the caller proved) lets kernels pick requantization
        instructions that are exact only on small accumulators."""
        dt = node.out.type.dtype
        rq: Requant | None = node.attrs.get("requant")
        lo, hi = _act_range(node, node.attrs.get("act"), dt)
        ep = {"kind": "none", "per_channel": False, "mult": "0", "shift": "0", "zp": _lit(0),
              "lo": _lit(lo), "hi": _lit(hi), "wide": wide}
        if rq is None:
            return ep
        m = np.asarray(rq.multiplier, np.int64).reshape(-1)
        s = np.asarray(rq.shift, np.int64).reshape(-1)
        ep["kind"] = rq.kind
        ep["zp"] = _lit(node.attrs.get("out_zp", 0))
        lim = {"dyadic": (-31, 31), "single": (-31, 31), "shift": (-63, 62)}.get(rq.kind)
        if lim is None:
            _fail(node, f"unknown requantization kind {rq.kind!r}")
        if np.any(s < lim[0]) or np.any(s > lim[1]) or np.any(m < 0) or np.any(m > INT32_MAX):
            _fail(node, "requantization parameters out of range")
        if rq.per_channel and m.size > 1 and (np.any(m != m[0]) or np.any(s != s[0])):
            if m.size != channels:
                _fail(node, f"per-channel requantization has {m.size} entries for {channels} channels")
            if rq.kind in ("dyadic", "single"):
                args.append(Arg("const int32_t *mult", "array", self.array(layer, "mult", "int32_t", m), "int32_t"))
            args.append(Arg("const int32_t *shift", "array", self.array(layer, "shift", "int32_t", s), "int32_t"))
            ep.update(per_channel=True, mult="mult", shift="shift", mult_values=[int(v) for v in m],
                      shift_values=[int(v) for v in s])
        else:
            ep.update(mult=_lit(m[0]), shift=_lit(s[0]))
        # Value ranges of the per-channel parameters, for kernels that tell the C compiler (so it
        # can drop the branches of the requantization helpers that never run).
        ep.update(shift_min=int(s.min()), shift_max=int(s.max()), mult_min=int(m.min()),
                  zp_value=int(node.attrs.get("out_zp", 0)))
        if acc_bound is not None:
            ep["acc_bound"] = int(acc_bound)
        # The DSP kernels' per-channel requantization as one table of (multiplier, rounding
        # constant 2^(n-1) + zp 2^n, right shift n) triples, so that an output channel loads three
        # words instead of deriving them (_dsp.epilogue, mcuc_dsp_rdbpot_c); where its single add
        # and shift are exact: small accumulators, right shifts 1..21, |zp| <= 255.
        zp = int(node.attrs.get("out_zp", 0))
        if (self.dsp and ep["per_channel"] and rq.kind == "dyadic" and acc_bound is not None and acc_bound < 1 << 30
                and s.max() <= -1 and s.min() >= -21 and abs(zp) <= 255):
            n = -s
            c = (1 << (n - 1)) + zp * (1 << n)
            ep["rq_words"] = [_lit(v) for v in np.stack([m, c, n], axis=1).reshape(-1)]
        # The RISC-V kernels' branch-free requantization (mcuc_round.h mcuc_dyadic_zp_small, no
        # 64-bit product): (multiplier, 2^n + zp 2^(n+1) + 1, n + 1) per channel (a single triple
        # per tensor), where its bounds hold: |acc| < 2^28, right shifts n = 1..21, |zp| <= 255.
        if (self.riscv and rq.kind == "dyadic" and acc_bound is not None and acc_bound < 1 << 28
                and s.max() <= -1 and s.min() >= -21 and abs(zp) <= 255):
            pc = ep["per_channel"]
            mk = np.broadcast_to(m, (channels,)) if pc else m[:1]
            n = np.broadcast_to(-s, (channels,)) if pc else -s[:1]
            d = (1 << n) + zp * (1 << (n + 1)) + 1
            ep["rv_rq"] = [_lit(v) for v in np.stack([mk, d, n + 1], axis=1).reshape(-1)]
            # A lower clamp at or above the zero point (fused ReLU) lets the kernels drop a step.
            ep["rv_relu"] = lo >= zp
        return ep

    # -- driver ------------------------------------------------------------------------------
    def run(self) -> Program:
        g = self.g
        verify(g, integer_only=True)
        inputs, outputs, skip = self._boundaries()
        for node in g.nodes:
            if node in skip:
                continue
            fn = getattr(self, f"_op_{node.op}", None)
            if fn is None:
                _fail(node, "op is not supported by code generation")
            for v in node.inputs:
                if v is not None and not v.is_const and v.type.dtype.is_float:
                    _fail(node, "reads a float tensor")
            idx = len(self.layers)
            cname = self.namer.name(("node", node.name), f"l{idx}_{node.name}")
            layer = fn(node, idx, cname)
            self.layers.append(layer)
        return Program(self.name, inputs, outputs, self.layers, self.arrays, self.value_consts, self.namer)

    def _boundaries(self):
        g = self.g
        skip = set()
        # Inputs and outputs are named apart from everything else: they only appear as in_/out_
        # parameters and as IN_/OUT_ macros, so they cannot clash with other symbols.
        in_names, out_names = Namer(), Namer()
        inputs: list[IOTensor] = []
        for gi in g.inputs:
            cons = g.consumers(gi)
            if gi.type.dtype.is_float:
                if not cons:
                    continue
                if len(cons) != 1 or cons[0].op != "quantize":
                    raise McucError("a float graph input must feed exactly one quantize node",
                                    where=f"graph input {gi.name!r}")
                q = cons[0]
                skip.add(q)
                v = q.out
            else:
                v = gi
            if v.type.quant is not None and v.type.quant.per_channel:
                raise McucError("per-channel quantization of a graph input is not supported", where=f"graph input {gi.name!r}")
            cname = in_names.name(len(inputs), gi.name, fallback="input")
            inputs.append(IOTensor(v, cname, gi.name, len(inputs)))
        outputs: list[IOTensor] = []
        for go in g.outputs:
            v = go
            if go.producer is not None and go.producer.op == "dequantize":
                skip.add(go.producer)
                v = go.producer.inputs[0]
            if v.type.dtype.is_float:
                raise McucError("graph output is float but not produced by a dequantize", where=f"graph output {go.name!r}")
            if v.is_const:
                self.value_const(v)
            cname = out_names.name(len(outputs), go.name, fallback="output")
            outputs.append(IOTensor(v, cname, go.name, len(outputs)))
        return inputs, outputs, skip

    # -- helpers for layers ------------------------------------------------------------------
    def _in_arg(self, v: Value, name: str) -> Arg:
        return Arg(f"const {v.type.dtype.ctype} *{name}", "in", v, v.type.dtype.ctype)

    def _out_arg(self, v: Value) -> Arg:
        return Arg(f"{v.type.dtype.ctype} *y", "out", v, v.type.dtype.ctype)

    def _fn(self, op: str, variant: str | None, node: Node, idx: int, extra: str = "") -> str:
        x = node.inputs[0].type.dtype
        # The model name keeps the kernels of several models apart in one firmware.
        parts = ["mcuc", op] + ([variant] if variant else []) + [cdata.SUFFIX.get(x, x.short) + extra, self.name, f"l{idx}"]
        return "_".join(parts)

    def _layer(self, node, idx, cname, template, func, args, params, *, scratch=0, inplace=(), alias=False) -> Layer:
        reads = [a.ref for a in args if a.kind == "in"]
        base = {"fn": func, "sig": [a.decl for a in args], "layer": cname}
        base.update(params)
        return Layer(idx, node, cname, template, func, args, base, reads, node.out, scratch, tuple(inplace), alias)

    def _nhwc(self, node: Node):
        if node.attrs.get("layout") != "NHWC":
            _fail(node, "code generation needs the NHWC layout (run the layout pass first); NCHW is not supported")

    def _pre_extended(self, cname, xdt, w, wvals, wzp, o, k, pixels):
        """(array, loader) of int8 weights pre-extended for the DSP kernels' dot products
        (mcuc_ld_s8x): one load instead of a load and two SXTB16 per weight word, at twice the
        flash (hence the budget and the minimum of output ``pixels``); None where those kernels
        do not read them."""
        if not (xdt is DType.INT8 and w.type.dtype is DType.INT8 and k % 4 == 0 and not np.any(wzp != 0)
                and pixels >= PRE_EXTEND_MIN_PIXELS and o * k <= self.pre_extend_left):
            return None
        self.pre_extend_left -= o * k
        ext = wvals.reshape(o, k // 4, 4)[:, :, [0, 2, 1, 3]]
        return self.array(cname, "w", "int16_t", ext), "mcuc_ld_s8x"

    def _check_acc(self, node: Node, bound: float):
        if bound > ACC_LIMIT:
            _fail(node, f"int32 accumulation may overflow (bound {int(bound)})")

    # -- compute ops -------------------------------------------------------------------------
    def _op_conv2d(self, node: Node, idx: int, cname: str) -> Layer:
        if lowbit.applies(node):
            return lowbit.lower_conv(self, node, idx, cname)
        self._nhwc(node)
        x, w = node.inputs[0], node.inputs[1]
        b = node.input(2)
        n, h, wd, c = x.type.shape
        o, kh, kw, cg = w.type.shape
        _, oh, ow, oc = node.out.type.shape
        grp = int(node.attrs["groups"])
        sh, sw = node.attrs["strides"]
        dh, dw = node.attrs.get("dilations", (1, 1))
        pt, pl, pb, pr = node.attrs["pads"]
        xzp = int(node.attrs["x_zp"])
        wzp = np.broadcast_to(np.asarray(node.attrs["w_zp"], np.int64).reshape(-1), (o,)).copy()
        wvals = np.asarray(w.const, np.int64).reshape(o, -1)
        bias = np.zeros(o, np.int64) if b is None else np.asarray(self._const(node, b), np.int64).reshape(-1)
        xdt = x.type.dtype
        xmax = max(abs(xdt.qmin - xzp), abs(xdt.qmax - xzp))
        wmax = int(np.abs(wvals - wzp[:, None]).max()) if wvals.size else 0
        k_total = kh * kw * cg
        acc_bound = int(k_total * xmax * wmax + (np.abs(bias).max() if bias.size else 0))
        self._check_acc(node, acc_bound)
        if x.type.dtype.bits > 16:
            _fail(node, "conv2d inputs wider than 16 bits are not supported")

        if kh == 1 and kw == 1 and grp == 1 and not any((pt, pl, pb, pr)):
            return self._pointwise(node, idx, cname, "conv2d", "1x1", "conv2d_1x1.c.j2", x, w, wvals, wzp, bias, xzp,
                                   rows_shape=(n, oh, ow), src=(h, wd, sh, sw), k=c, o=o)
        pre = self._pre_extended(cname, xdt, w, wvals, wzp, o, k_total, n * oh * ow) if grp == 1 else None
        args, ld, has_bias, wz, ep = self._weighted_args(node, cname, x, w, pre, wzp, bias, o, acc_bound)
        common = dict(N=n, H=h, W=wd, C=c, OH=oh, OW=ow, OC=o, KH=kh, KW=kw, SH=sh, SW=sw, DH=dh, DW=dw, PT=pt, PL=pl,
                      XZP=xzp, it=xdt.ctype, ot=node.out.type.dtype.ctype, ld=ld, has_bias=has_bias, wz=wz, ep=ep,
                      wdt=w.type.dtype.short)
        wsfx = "" if w.type.dtype in (DType.INT8, xdt) else "_w" + cdata.SUFFIX[w.type.dtype]
        common["fold"] = self._folded_bias(node, x, wvals, wzp, bias, xzp, kh * kw * cg)
        if grp == c and cg == 1 and o % c == 0:
            # The DSP kernel's padded one-channel plane (multiplier 1, int8, at most 25 taps, and
            # not the one-input-channel conv path): arena scratch, so the arena figure counts it.
            ph = max(h + pt, (oh - 1) * sh + (kh - 1) * dh + 1)
            pw = max(wd + pl, (ow - 1) * sw + (kw - 1) * dw + 1)
            plane = ph * pw + 4 if (self.dsp and xdt is DType.INT8 and ld == "mcuc_ld_s8" and wz["kind"] == "none"
                                    and o == c and kh * kw <= 25 and ph * pw <= 4096
                                    and not (c == 1 and common["fold"] is not None)) else 0
            # The RISC-V kernel's padded plane (templates/riscv/conv2d_dw.c.j2): one input channel
            # at a time, padding as the input zero point, so no output pixel needs bounds checks.
            if (self.riscv and xdt is DType.INT8 and ld == "mcuc_ld_s8" and wz["kind"] == "none" and o <= 256
                    and (o == c or c == 1) and ph * pw <= 4096):
                plane = ph * pw + 4
            if plane:
                args.append(Arg("void *scratch", "scratch"))
            return self._layer(node, idx, cname, "conv2d_dw.c.j2", self._fn("conv2d", "dw", node, idx, wsfx), args,
                               dict(common, M=o // c, PLANE=plane, PH=ph, PW=pw,
                                    **self._dw_consts(x, w, wvals, wzp, bias, xzp, kh, kw, dw)), scratch=plane)
        col_t = "int16_t" if xmax <= 32767 else "int32_t"
        k = kh * kw * cg
        scratch = 2 * k * (2 if col_t == "int16_t" else 4)
        # The DSP kernel sign-extends the unfolded pixel pair once (2 x K/2 words before the raw
        # 2K bytes of the pair) when enough output channels reuse it (XE_MIN_CHANNELS).
        xe = (self.dsp and xdt is DType.INT8 and ld in ("mcuc_ld_s8", "mcuc_ld_s8x") and wz["kind"] == "none"
              and common["fold"] is not None and grp == 1 and k % 4 == 0 and o >= XE_MIN_CHANNELS and oh * ow >= 2)
        if xe:
            scratch = max(scratch, 6 * k)
        args.append(Arg("void *scratch", "scratch"))
        return self._layer(node, idx, cname, "conv2d_im2col.c.j2", self._fn("conv2d", "im2col", node, idx, wsfx), args,
                           dict(common, G=grp, CG=cg, OCG=o // grp, K=k, col_t=col_t, XE=xe), scratch=scratch)

    def _dw_consts(self, x: Value, w: Value, wvals, wzp, bias, xzp: int, kh: int, kw: int, dw: int) -> dict:
        """Per-channel constants of the DSP depthwise kernel, so that its channel loop loads them
        instead of deriving them: DWB, the bias with the padding's x_zp * sum(w) folded in; and
        for 3-wide windows DWP, per channel the kh words (w[ky][2] << 16 | w[ky][0] & 0xFFFF)
        that SMLAD pairs with SXTB16 of a row word, then the kh middle weights w[ky][1].
        None of them outside the DSP family, for non-int8 operands or with weight zero points."""
        if not (self.dsp and x.type.dtype is DType.INT8 and w.type.dtype is DType.INT8 and not np.any(wzp != 0)):
            return {"DWB": None, "DWP": None}
        b = (bias if bias.size else np.zeros(len(wvals), np.int64)) - xzp * wvals.sum(axis=1)
        if np.any(np.abs(b) > INT32_MAX):
            return {"DWB": None, "DWP": None}
        dwp = None
        if kw == 3 and dw == 1:
            t = wvals.reshape(len(wvals), kh, 3)
            words = ((t[:, :, 2] & 0xFFFF) << 16) | (t[:, :, 0] & 0xFFFF)
            words = np.where(words >= 1 << 31, words - (1 << 32), words)
            dwp = [_lit(v) for v in np.concatenate([words, t[:, :, 1]], axis=1).reshape(-1)]
        return {"DWB": [_lit(v) for v in b], "DWP": dwp}

    @staticmethod
    def _folded_bias(node: Node, x: Value, wvals: np.ndarray, wzp: np.ndarray, bias: np.ndarray, xzp: int, k: int):
        """bias - x_zp * sum(w) per output channel as C literals, for kernels that unfold padding
        as x_zp and multiply raw inputs (sum((x - x_zp) w) = sum(x w) - x_zp sum(w)); None when
        the raw products could leave int32 or weights have a zero point."""
        if np.any(wzp != 0) or x.type.dtype.bits > 8 or node.attrs.get("groups", 1) != 1:
            return None
        b = (bias if bias.size else np.zeros(len(wvals), np.int64)) - xzp * wvals.sum(axis=1)
        xabs = max(abs(x.type.dtype.qmin), abs(x.type.dtype.qmax))
        wabs = int(np.abs(wvals).max()) if wvals.size else 0
        if int(np.abs(b).max()) + k * xabs * wabs > INT32_MAX:
            return None
        return [_lit(v) for v in b]

    def _const(self, node: Node, v: Value):
        if not v.is_const:
            _fail(node, f"input %{v.name} must be a constant")
        return v.const

    def _wzp_param(self, cname: str, wzp: np.ndarray, args: list[Arg]) -> dict:
        """Weight zero point: absent, one constant, or a per-channel array argument."""
        if not np.any(wzp != 0):
            return {"kind": "none", "value": "0"}
        if np.all(wzp == wzp[0]):
            return {"kind": "const", "value": _lit(wzp[0])}
        args.append(Arg("const int32_t *wzp", "array", self.array(cname, "wzp", "int32_t", wzp), "int32_t"))
        return {"kind": "array", "value": "wzp"}

    def _pointwise(self, node, idx, cname, op, variant, template, x, w, wvals, wzp, bias, xzp, *, rows_shape, src, k, o):
        """Kernels without padding (1x1 conv, dense): the input zero point folds into the bias.

        sum((x - xz)(w - wz)) = sum(x w) - wz sum(x) - xz sum(w) + K xz wz, so
        bias' = bias - xz sum(w) + K xz wz and the loop multiplies raw inputs.
        """
        bias_eff = bias - xzp * wvals.sum(axis=1) + k * xzp * wzp
        if np.any(np.abs(bias_eff) > INT32_MAX):
            _fail(node, "folded bias does not fit int32")
        xdt = x.type.dtype
        xabs = max(abs(xdt.qmin), abs(xdt.qmax))
        wabs = int(np.abs(wvals).max()) if wvals.size else 0
        acc_bound = k * xabs * wabs + k * xabs * int(np.abs(wzp).max()) + int(np.abs(bias_eff).max())
        self._check_acc(node, acc_bound)
        pre = self._pre_extended(cname, xdt, w, wvals, wzp, o, k, int(np.prod(rows_shape))) if op == "conv2d" else None
        args, ld, has_bias, wz, ep = self._weighted_args(node, cname, x, w, pre, wzp, bias_eff, o, acc_bound)
        wsfx = "" if w.type.dtype in (DType.INT8, xdt) else "_w" + cdata.SUFFIX[w.type.dtype]
        params = dict(K=k, O=o, it=xdt.ctype, ot=node.out.type.dtype.ctype, ld=ld, has_bias=has_bias, wz=wz, ep=ep,
                      bias_values=[_lit(v) for v in bias_eff])
        dsp8 = self.dsp and xdt is DType.INT8 and ld in ("mcuc_ld_s8", "mcuc_ld_s8x") and wz["kind"] == "none"
        if op == "conv2d":
            n, oh, ow = rows_shape
            h, wd, sh, sw = src
            params.update(N=n, H=h, W=wd, OH=oh, OW=ow, SH=sh, SW=sw)
            # The DSP kernel sign-extends each pixel pair once into scratch (2 x K/2 words) when
            # the rows are whole words and enough output channels reuse them.
            cols = n * oh * ow if sh == 1 and sw == 1 else ow
            xe = 4 * k if dsp8 and k % 4 == 0 and k >= 16 and o >= XE_MIN_CHANNELS and cols >= 2 else 0
        else:
            params.update(ROWS=rows_shape)
            # The DSP kernel sign-extends a lone (odd) row once into scratch for all its blocks.
            xe = 8 * (k // 4) if dsp8 and rows_shape % 2 == 1 and k // 4 and 8 * (k // 4) <= 8192 else 0
        params["XE"] = xe
        if xe:
            args.append(Arg("void *scratch", "scratch"))
        return self._layer(node, idx, cname, template, self._fn(op, variant, node, idx, wsfx), args, params, scratch=xe)

    def _op_dense(self, node: Node, idx: int, cname: str) -> Layer:
        if lowbit.applies(node):
            return lowbit.lower_dense(self, node, idx, cname)
        x, w = node.inputs[0], node.inputs[1]
        b = node.input(2)
        o, k = w.type.shape
        xzp = int(node.attrs["x_zp"])
        wzp = np.broadcast_to(np.asarray(node.attrs["w_zp"], np.int64).reshape(-1), (o,)).copy()
        wvals = np.asarray(w.const, np.int64).reshape(o, k)
        bias = np.zeros(o, np.int64) if b is None else np.asarray(self._const(node, b), np.int64).reshape(-1)
        if x.type.dtype.bits > 16:
            _fail(node, "dense inputs wider than 16 bits are not supported")
        rows = x.type.size // k
        return self._pointwise(node, idx, cname, "dense", None, "dense.c.j2", x, w, wvals, wzp, bias, xzp,
                               rows_shape=rows, src=None, k=k, o=o)

    def _operand(self, v: Value, name: str) -> Arg:
        if v.is_const:
            return Arg(f"const {v.type.dtype.ctype} *{name}", "array", self.value_const(v), v.type.dtype.ctype)
        return self._in_arg(v, name)

    def _broadcast(self, node: Node, keep_last=False):
        shapes = [i.type.shape for i in node.inputs]
        res = collapse(node.out.type.shape, shapes, keep_last=keep_last)
        if res is None:
            _fail(node, "broadcast needs more than 4 distinct dimensions")
        dims, strides = res
        return dims, strides

    def _inplace_positions(self, node: Node) -> tuple[int, ...]:
        out = node.out.type
        return tuple(p for p, v in enumerate(node.inputs)
                     if v is not None and not v.is_const and v.type.shape == out.shape
                     and v.type.dtype.np.itemsize == out.dtype.np.itemsize)

    def _op_add(self, node: Node, idx: int, cname: str) -> Layer:
        a, b = node.inputs
        p = node.attrs["params"]
        mode = node.attrs["mode"]
        dims, (sa, sb) = self._broadcast(node)
        out_dt = node.out.type.dtype
        lo, hi = _act_range(node, p.get("act"), out_dt)
        args = [self._operand(a, "a"), self._operand(b, "b"), self._out_arg(node.out)]
        params = dict(D=dims, SA=sa, SB=sb, at=a.type.dtype.ctype, bt=b.type.dtype.ctype, ot=out_dt.ctype,
                      AZP=_lit(p["a_zp"]), BZP=_lit(p["b_zp"]), OZP=_lit(p["out_zp"]), LO=_lit(lo), HI=_lit(hi))
        amax = max(abs(a.type.dtype.qmin - p["a_zp"]), abs(a.type.dtype.qmax - p["a_zp"]))
        bmax = max(abs(b.type.dtype.qmin - p["b_zp"]), abs(b.type.dtype.qmax - p["b_zp"]))
        if mode == "tflite":
            ls = int(p["left_shift"])
            if not 0 <= ls <= 62:
                _fail(node, "add left_shift out of range")
            params.update(LS=ls, AM=_lit(p["a_mult"]), ASH=_lit(p["a_shift"]), BM=_lit(p["b_mult"]),
                          BSH=_lit(p["b_shift"]), OM=_lit(p["out_mult"]), OSH=_lit(p["out_shift"]),
                          OSH_N=int(p["out_shift"]), exact_shl=max(amax, bmax) * (1 << ls) <= INT32_MAX, SCALE=1 << min(ls, 30),
                          TA=self._add_table(a.type.dtype, p["a_zp"], ls, p["a_mult"], p["a_shift"]),
                          TB=self._add_table(b.type.dtype, p["b_zp"], ls, p["b_mult"], p["b_shift"]),
                          AMIN=_lit(a.type.dtype.qmin), BMIN=_lit(b.type.dtype.qmin))
            template, variant = "add_tflite.c.j2", "tflite"
            params["LUT"] = self._add_lut(node, cname, args)
        elif mode == "shift":
            ash, bsh, osh = int(p["a_shift"]), int(p["b_shift"]), int(p["out_shift"])
            if not (0 <= ash <= 30 and 0 <= bsh <= 30 and -63 <= osh <= 62):
                _fail(node, "add shifts out of range")
            wide = (amax << ash) + (bmax << bsh) > INT32_MAX
            params.update(ASH=ash, BSH=bsh, OSH=osh, acc_t="int64_t" if wide else "int32_t",
                          AS=1 << ash, BS=1 << bsh, FAST=self._add_shift_fast(a, b, p, ash, bsh, osh))
            template, variant = "add_shift.c.j2", "shift"
        else:
            _fail(node, f"unknown add mode {mode!r}")
        return self._layer(node, idx, cname, template, self._fn("add", variant, node, idx), args, params,
                           inplace=self._inplace_positions(node))

    def _add_shift_fast(self, a: Value, b: Value, p: dict, ash: int, bsh: int, osh: int) -> dict | None:
        """Constants of the DSP power-of-two add, all in int32: v = (a << ash) + (b << bsh) + C1
        (C1 removes both zero points), y = (v + ((v >> osh) & 1) + C2) >> osh with
        C2 = 2^(osh-1) - 1 + out_zp 2^osh, which is shift_round_half_even(v, osh) + out_zp.
        None outside the DSP family, for shifts outside 1..24 or operands wider than 8 bits, or
        when a sum could leave int32."""
        if not (self.dsp and 1 <= osh <= 24 and a.type.dtype.bits <= 8 and b.type.dtype.bits <= 8):
            return None
        c1 = -(int(p["a_zp"]) << ash) - (int(p["b_zp"]) << bsh)
        c2 = (1 << (osh - 1)) - 1 + int(p["out_zp"]) * (1 << osh)
        amax = max(abs(a.type.dtype.qmin), abs(a.type.dtype.qmax))
        bmax = max(abs(b.type.dtype.qmin), abs(b.type.dtype.qmax))
        if (amax << ash) + (bmax << bsh) + abs(c1) + 1 + abs(c2) > INT32_MAX:
            return None
        return {"C1": _lit(c1), "C2": _lit(c2)}

    def _add_lut(self, node: Node, cname: str, args: list[Arg]) -> bool:
        """The whole 8-bit add as one table of its 65536 outputs, indexed by the operands' bit
        patterns (b << 8 | a): computed by the reference interpreter itself, so exact by
        construction. Added as an argument before the output when the budget allows."""
        a, b = node.inputs
        dts = (a.type.dtype, b.type.dtype, node.out.type.dtype)
        if not (all(d in (DType.INT8, DType.UINT8) for d in dts) and node.out.type.size >= ADD_TABLE_MIN
                and self.add_table_left >= 65536):
            return False
        self.add_table_left -= 65536
        codes = np.arange(256, dtype=np.uint8)
        ya = codes.view(a.type.dtype.np)[None, :]
        yb = codes.view(b.type.dtype.np)[:, None]
        table = np.asarray(interpreter.eval_node(node, [ya, yb]))
        arr = self.array(cname, "lut", node.out.type.dtype.ctype, table.astype(np.int64))
        args.insert(2, Arg(f"const {arr.ctype} *lut", "array", arr, arr.ctype))
        return True

    @staticmethod
    def _add_table(dt: DType, zp: int, ls: int, mult: int, shift: int):
        """Every code of an 8-bit add operand on the common grid, as the reference computes it
        (rounding.multiply_by_quantized_multiplier of (q - zp) << left_shift), for kernels that
        look the scaled operands up instead of requantizing them per element; None for wider types."""
        if dt.bits > 8:
            return None
        q = np.arange(dt.qmin, dt.qmax + 1, dtype=np.int64) - int(zp)
        return [int(v) for v in rounding.multiply_by_quantized_multiplier(q << ls, mult, shift)]

    def _op_mul(self, node: Node, idx: int, cname: str) -> Layer:
        a, b = node.inputs
        rq = node.attrs.get("requant")
        per_channel = rq is not None and rq.per_channel and np.asarray(rq.shift).size > 1
        dims, (sa, sb) = self._broadcast(node, keep_last=per_channel)
        azp, bzp = int(node.attrs["a_zp"]), int(node.attrs["b_zp"])
        amax = max(abs(a.type.dtype.qmin - azp), abs(a.type.dtype.qmax - azp))
        bmax = max(abs(b.type.dtype.qmin - bzp), abs(b.type.dtype.qmax - bzp))
        wide = amax * bmax > INT32_MAX
        args = [self._operand(a, "a"), self._operand(b, "b")]
        ep_args: list[Arg] = []
        ep = self.epilogue(node, cname, node.out.type.shape[-1] if node.out.type.shape else 1, ep_args, wide=wide)
        args += ep_args
        args.append(self._out_arg(node.out))
        params = dict(D=dims, SA=sa, SB=sb, at=a.type.dtype.ctype, bt=b.type.dtype.ctype, ot=node.out.type.dtype.ctype,
                      AZP=_lit(azp), BZP=_lit(bzp), ep=ep, acc_t="int64_t" if wide else "int32_t")
        return self._layer(node, idx, cname, "mul.c.j2", self._fn("mul", None, node, idx), args, params,
                           inplace=self._inplace_positions(node))

    def _op_requantize(self, node: Node, idx: int, cname: str) -> Layer:
        x = node.inputs[0]
        shape = x.type.shape
        rq = node.attrs.get("requant")
        per_channel = rq is not None and rq.per_channel and np.asarray(rq.shift).size > 1
        if per_channel:
            axis = node.attrs.get("axis", 1) % len(shape)
            outer = int(np.prod(shape[:axis], dtype=np.int64))
            chans = shape[axis]
            inner = int(np.prod(shape[axis + 1:], dtype=np.int64))
        else:
            outer, chans, inner = 1, 1, x.type.size
        in_zp = int(node.attrs["in_zp"])
        xdt = x.type.dtype
        args = [self._in_arg(x, "x")]
        ep_args: list[Arg] = []
        # (x - in_zp) is int64: an int32 input minus its zero point can leave int32.
        ep = self.epilogue(node, cname, chans, ep_args, wide=True)
        args += ep_args
        args.append(self._out_arg(node.out))
        params = dict(OUTER=outer, CH=chans, INNER=inner, IZP=cdata.c_int(in_zp, "int64_t"), it=xdt.ctype,
                      ot=node.out.type.dtype.ctype, ep=ep)
        return self._layer(node, idx, cname, "requantize.c.j2", self._fn("requantize", None, node, idx), args, params,
                           inplace=self._inplace_positions(node))

    def _op_clamp(self, node: Node, idx: int, cname: str) -> Layer:
        x = node.inputs[0]
        lo, hi = _act_range(node, (node.attrs["lo"], node.attrs["hi"]), x.type.dtype)
        odt = node.out.type.dtype
        args = [self._in_arg(x, "x"), self._out_arg(node.out)]
        params = dict(SIZE=x.type.size, LO=_lit(max(lo, odt.qmin)), HI=_lit(min(hi, odt.qmax)), it=x.type.dtype.ctype,
                      ot=odt.ctype)
        return self._layer(node, idx, cname, "clamp.c.j2", self._fn("clamp", None, node, idx), args, params,
                           inplace=self._inplace_positions(node))

    def _op_softmax(self, node: Node, idx: int, cname: str) -> Layer:
        x = node.inputs[0]
        shape = x.type.shape
        ax = node.attrs["axis"]
        if ax not in (-1, len(shape) - 1):
            _fail(node, "integer softmax runs along the last axis")
        dt = node.out.type.dtype
        length = shape[-1] if shape else 1
        mode = node.attrs.get("mode", "tflite")
        if mode == "exact":
            return self._softmax_exact(node, idx, cname, length)
        if mode != "tflite":
            _fail(node, f"unknown softmax mode {mode!r}")
        args = [self._in_arg(x, "x"), self._out_arg(node.out)]
        params = dict(ROWS=x.type.size // max(length, 1), L=length, MULT=_lit(node.attrs["mult"]),
                      SHIFT=int(node.attrs["shift"]), DIFF_MIN=_lit(node.attrs["diff_min"]), OMIN=_lit(dt.qmin),
                      OMAX=_lit(dt.qmax), it=x.type.dtype.ctype, ot=dt.ctype)
        if not 0 <= int(node.attrs["shift"]) <= 62:
            _fail(node, "softmax shift out of range")
        params["EXP"] = self._softmax_exp(node, x)
        return self._layer(node, idx, cname, "softmax.c.j2", self._fn("softmax", None, node, idx), args, params,
                           inplace=self._inplace_positions(node))

    def _softmax_exp(self, node: Node, x: Value) -> list[str] | None:
        """For the DSP family and 8-bit inputs: exp of every difference to the row maximum,
        indexed by -diff, as rounding.softmax_s8 computes it (0 below diff_min, which then gives
        both a zero contribution to the sum and the output minimum)."""
        if not self.dsp or x.type.dtype.bits > 8:
            return None
        diff = -np.arange(x.type.dtype.qmax - x.type.dtype.qmin + 1, dtype=np.int64)
        scaled = rounding.srdhm(rounding.sat_i32(diff * (1 << int(node.attrs["shift"]))), int(node.attrs["mult"]))
        e = rounding.exp_on_negative_values(scaled)
        return [_lit(v) for v in np.where(diff >= int(node.attrs["diff_min"]), e, 0)]

    def _softmax_exact(self, node: Node, idx: int, cname: str, length: int) -> Layer:
        """Probabilities in Q31 from an exp table and one division, then the epilogue."""
        x = node.inputs[0]
        xdt = x.type.dtype
        table = np.asarray(node.attrs["table"], np.int64).reshape(-1)
        need = xdt.qmax - xdt.qmin + 1
        if table.size < need:
            _fail(node, f"exp table has {table.size} entries, {xdt.short} needs {need}")
        table = table[:need]
        if table.min() < 0 or table.max() > (1 << 30) or table[0] <= 0:
            _fail(node, "exp table entries must lie in [0, 2^30], the first above 0")
        if length * (1 << 30) >= (1 << 62):
            _fail(node, "softmax row too long")
        args = [self._in_arg(x, "x"), Arg("const int32_t *table", "array", self.array(cname, "exp", "int32_t", table), "int32_t")]
        ep_args: list[Arg] = []
        # Probabilities reach 2^31 (one dominant element): an int64 value, saturated by the
        # dyadic rule exactly as in the reference.
        ep = self.epilogue(node, cname, length, ep_args, wide=True)
        args += ep_args
        args.append(self._out_arg(node.out))
        params = dict(ROWS=x.type.size // max(length, 1), L=length, it=xdt.ctype, ot=node.out.type.dtype.ctype, ep=ep)
        return self._layer(node, idx, cname, "softmax_exact.c.j2", self._fn("softmax", "exact", node, idx), args, params,
                           inplace=self._inplace_positions(node))

    def _op_lut(self, node: Node, idx: int, cname: str) -> Layer:
        x = node.inputs[0]
        xdt, odt = x.type.dtype, node.out.type.dtype
        table = np.asarray(node.attrs["table"]).reshape(-1).astype(np.int64)
        if table.size < xdt.qmax - xdt.qmin + 1:
            _fail(node, f"table has {table.size} entries, {xdt.short} needs {xdt.qmax - xdt.qmin + 1}")
        table = table[: xdt.qmax - xdt.qmin + 1]
        args = [self._in_arg(x, "x"), Arg(f"const {odt.ctype} *table", "array", self.array(cname, "table", odt.ctype, table), odt.ctype),
                self._out_arg(node.out)]
        params = dict(SIZE=x.type.size, QMIN=_lit(xdt.qmin), it=xdt.ctype, ot=odt.ctype)
        return self._layer(node, idx, cname, "lut.c.j2", self._fn("lut", None, node, idx), args, params,
                           inplace=self._inplace_positions(node))

    def _pool_params(self, node: Node) -> dict:
        self._nhwc(node)
        x = node.inputs[0]
        n, h, w, c = x.type.shape
        _, oh, ow, _ = node.out.type.shape
        kh, kw = node.attrs["kernel"]
        sh, sw = node.attrs["strides"]
        dh, dw = node.attrs.get("dilations", (1, 1))
        pt, pl, _, _ = node.attrs["pads"]
        return dict(N=n, H=h, W=w, C=c, OH=oh, OW=ow, KH=kh, KW=kw, SH=sh, SW=sw, DH=dh, DW=dw, PT=pt, PL=pl,
                    it=x.type.dtype.ctype, ot=node.out.type.dtype.ctype)

    @staticmethod
    def _min_taps(p: dict) -> int:
        """Fewest taps of any pooling window that fall inside the input."""
        def axis(size, osize, k, s, d, pad):
            return min(sum(1 for t in range(k) if 0 <= o * s - pad + t * d < size) for o in range(osize))
        return axis(p["H"], p["OH"], p["KH"], p["SH"], p["DH"], p["PT"]) * axis(p["W"], p["OW"], p["KW"], p["SW"], p["DW"], p["PL"])

    def _op_maxpool(self, node: Node, idx: int, cname: str) -> Layer:
        params = self._pool_params(node)
        x = node.inputs[0]
        params.update(QMIN=_lit(x.type.dtype.qmin))
        args = [self._in_arg(x, "x"), self._out_arg(node.out)]
        return self._layer(node, idx, cname, "maxpool.c.j2", self._fn("maxpool", None, node, idx), args, params)

    def _op_avgpool(self, node: Node, idx: int, cname: str) -> Layer:
        params = self._pool_params(node)
        x = node.inputs[0]
        dt = node.out.type.dtype
        lo, hi = _act_range(node, node.attrs.get("act"), dt)
        args = [self._in_arg(x, "x")]
        rq = node.attrs.get("requant")
        kh, kw = params["KH"], params["KW"]
        if rq is None:
            if not node.attrs["count_include_pad"] and self._min_taps(params) == 0:
                _fail(node, "a pooling window lies entirely in the padding")
            mode = node.attrs["rounding"]
            if mode not in ("away", "even"):
                _fail(node, f"unknown rounding {mode!r}")
            off = int(node.attrs["sum_offset"])
            params.update(OFF=_lit(off), PADV=_lit(int(node.attrs["in_zp"]) - off), LO=_lit(lo), HI=_lit(hi),
                          div=f"mcuc_round_div_{mode}", INCLUDE_PAD=bool(node.attrs["count_include_pad"]),
                          DIVISOR=str(kh * kw) if node.attrs["count_include_pad"] else "count")
            args.append(self._out_arg(node.out))
            return self._layer(node, idx, cname, "avgpool.c.j2", self._fn("avgpool", None, node, idx), args, params)
        if rq.per_channel and np.asarray(rq.shift).size > 1:
            _fail(node, "per-channel requantization of an average pool is not supported")
        xdt = x.type.dtype
        izp = int(node.attrs["in_zp"])
        self._check_acc(node, kh * kw * max(abs(xdt.qmin - izp), abs(xdt.qmax - izp)))
        ep_args: list[Arg] = []
        ep = self.epilogue(node, cname, params["C"], ep_args)
        args += ep_args
        args.append(self._out_arg(node.out))
        if rq.kind not in ("single", "shift"):
            _fail(node, f"an average pool requantizes with a single rounding, not {rq.kind!r}")
        if not node.attrs["count_include_pad"] and self._min_taps(params) == 0:
            _fail(node, "a pooling window lies entirely in the padding")
        # Padding counted in the mean adds zeros (x - in_zp = 0) but counts in the divisor.
        params.update(IZP=_lit(node.attrs["in_zp"]), ep=ep,
                      DIVISOR=str(kh * kw) if node.attrs["count_include_pad"] else "count")
        return self._layer(node, idx, cname, "avgpool_requant.c.j2", self._fn("avgpool", "rq", node, idx), args, params)

    # -- data movement -----------------------------------------------------------------------
    def _op_reshape(self, node: Node, idx: int, cname: str) -> Layer:
        x = node.inputs[0]
        args = [self._operand(x, "x"), self._out_arg(node.out)]
        params = dict(BYTES=node.out.type.size * node.out.type.dtype.np.itemsize, it=x.type.dtype.ctype)
        return self._layer(node, idx, cname, "reshape.c.j2", self._fn("reshape", "copy", node, idx), args, params,
                           alias=True)

    def _op_transpose(self, node: Node, idx: int, cname: str) -> Layer:
        x = node.inputs[0]
        perm = [int(p) for p in node.attrs["perm"]]
        shape = x.type.shape
        ist = _strides(shape)
        dims = [shape[p] for p in perm]
        strides = [ist[p] for p in perm]
        keep = [i for i, d in enumerate(dims) if d != 1]
        dims = [dims[i] for i in keep]
        strides = [strides[i] for i in keep]
        d = len(dims) - 2
        while d >= 0:
            if strides[d] == strides[d + 1] * dims[d + 1]:
                dims[d] *= dims[d + 1]
                strides[d] = strides[d + 1]
                del dims[d + 1], strides[d + 1]
            d -= 1
        if len(dims) > 6:
            _fail(node, "transpose of more than 6 distinct dimensions")
        pad = 6 - len(dims)
        dims = [1] * pad + dims
        strides = [0] * pad + strides
        args = [self._operand(x, "x"), self._out_arg(node.out)]
        params = dict(D=dims, S=strides, it=x.type.dtype.ctype)
        return self._layer(node, idx, cname, "transpose.c.j2", self._fn("transpose", None, node, idx), args, params)

    def _op_concat(self, node: Node, idx: int, cname: str) -> Layer:
        out = node.out.type.shape
        ax = node.attrs["axis"] % len(out)
        outer = int(np.prod(out[:ax], dtype=np.int64))
        inner = int(np.prod(out[ax + 1:], dtype=np.int64))
        args, parts, off = [], [], 0
        for k, v in enumerate(node.inputs):
            args.append(self._operand(v, f"x{k}"))
            chunk = v.type.shape[ax] * inner
            parts.append({"name": f"x{k}", "chunk": chunk, "off": off})
            off += chunk
        args.append(self._out_arg(node.out))
        params = dict(OUTER=outer, ROW=out[ax] * inner, parts=parts, it=node.out.type.dtype.ctype)
        return self._layer(node, idx, cname, "concat.c.j2", self._fn("concat", None, node, idx), args, params)

    def _op_pad(self, node: Node, idx: int, cname: str) -> Layer:
        x = node.inputs[0]
        pads = [(int(b), int(e)) for b, e in node.attrs["pads"]]
        if any(b < 0 or e < 0 for b, e in pads):
            _fail(node, "negative pads (cropping) are not supported")
        shape = list(x.type.shape)
        if len(shape) > 6:
            _fail(node, "pad of more than 6 dimensions")
        dt = x.type.dtype
        value = int(node.attrs["value"])
        if not dt.qmin <= value <= dt.qmax:
            _fail(node, f"pad value {value} does not fit {dt.short}")
        pad = 6 - len(shape)
        dims = [1] * pad + shape
        begins = [0] * pad + [b for b, _ in pads]
        odims = [1] * pad + list(node.out.type.shape)
        args = [self._operand(x, "x"), self._out_arg(node.out)]
        params = dict(D=dims, B=begins, OS=_strides(odims), SIZE=node.out.type.size, VALUE=_lit(value), it=dt.ctype)
        return self._layer(node, idx, cname, "pad.c.j2", self._fn("pad", None, node, idx), args, params)


def lower(graph: Graph, name: str, *, families=(), flash_bytes: int | None = None) -> Program:
    """``families`` (the board's template families, never its name) choose weight layouts that
    the family's kernels read faster; ``flash_bytes`` (the board's flash) bounds the flash they
    may spend on speed."""
    return Lowering(graph, name, families=families, flash_bytes=flash_bytes).run()
