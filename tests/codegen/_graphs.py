"""Integer IR graphs built by hand for the codegen tests.

``layer_zoo`` puts many independent randomized cases into one graph (each case: its own
inputs, one or a few nodes, its own output), so one build of one project tests them all.
"""

from __future__ import annotations

import numpy as np

from compiler.ir import rounding
from compiler.ir.dtypes import DType
from compiler.ir.graph import Graph, TensorType, Value
from compiler.ir.quant import QParams, Requant

I8, U8, I4, I32 = DType.INT8, DType.UINT8, DType.INT4, DType.INT32


def weights(rng, dt: DType, shape):
    if dt is DType.INT1:  # binary weights are -1 or +1, never 0
        return rng.choice(np.array([-1, 1]), shape)
    return rng.integers(dt.qmin, dt.qmax + 1, shape)


class Builder:
    def __init__(self, seed: int, name: str = "zoo"):
        self.g = Graph(name)
        self.rng = np.random.default_rng(seed)
        self.n = 0

    # -- values ------------------------------------------------------------------------------
    def q(self, dt: DType = I8) -> QParams:
        zp = int(self.rng.integers(dt.qmin, dt.qmax + 1)) if self.rng.random() < 0.7 else (0 if dt.signed else 128)
        return QParams(float(self.rng.uniform(0.005, 0.2)), zp)

    def inp(self, shape, dt: DType = I8, q: QParams | None = None, layout="NHWC") -> Value:
        v = self.g.value(f"in{len(self.g.inputs)}", TensorType(shape, dt, q or self.q(dt), layout if len(shape) == 4 else None))
        self.g.inputs.append(v)
        return v

    def out(self, v: Value) -> Value:
        self.g.outputs.append(v)
        return v

    def ttype(self, shape, dt=I8, q=None, layout="NHWC"):
        if dt is I32 and q is None:
            return TensorType(shape, dt, None, layout if len(shape) == 4 else None)
        return TensorType(shape, dt, q or self.q(dt), layout if len(shape) == 4 else None)

    def node(self, op, inputs, out_type, attrs, name=None):
        self.n += 1
        return self.g.add_node(op, inputs, [out_type], attrs, name=name or f"{op}{self.n}").out

    def requant(self, channels: int, per_channel: bool, kind: str, lo=-8, hi=-4) -> Requant:
        k = channels if per_channel else 1
        if kind == "shift":
            shifts = self.rng.integers(2, 10, k) if lo < 0 else self.rng.integers(lo, hi, k)
            r = Requant("shift", np.ones(k, np.int64), shifts)
        else:
            r = Requant.from_ratio(np.exp2(self.rng.uniform(lo * 1.5, hi, k)), False, single=kind == "single")
        if not per_channel:
            r = Requant(r.kind, r.multiplier.reshape(()), r.shift.reshape(()))
        return r

    def act(self, dt: DType, zp: int = 0):
        """Full range, or a random range around the zero point (a fused ReLU-like clamp)."""
        if self.rng.random() < 0.5:
            return (dt.qmin, dt.qmax)
        lo = max(dt.qmin, zp - int(self.rng.integers(0, 100)))
        return (lo, min(dt.qmax, zp + int(self.rng.integers(20, 120))))

    # -- compute cases -----------------------------------------------------------------------
    def conv(self, *, h, w, c, o, k, stride=(1, 1), dil=(1, 1), pads=(0, 0, 0, 0), groups=1, xdt=I8, wdt=I8,
             per_channel=True, kind="dyadic", wzp=0, bias=True, out_dt=I8, requant=True, x=None):
        kh, kw = k
        x = x if x is not None else self.inp((1, h, w, c), xdt)
        cg = c // groups
        wv = weights(self.rng, wdt, (o, kh, kw, cg))
        wt = self.g.const(f"w{self.n}", wv, wdt)
        ins = [x, wt]
        if bias:
            ins.append(self.g.const(f"b{self.n}", self.rng.integers(-3000, 3000, o), I32))
        oh = (h + pads[0] + pads[2] - dil[0] * (kh - 1) - 1) // stride[0] + 1
        ow = (w + pads[1] + pads[3] - dil[1] * (kw - 1) - 1) // stride[1] + 1
        rq = self.requant(o, per_channel, kind) if requant else None
        odt = out_dt if requant else I32
        ozp = int(self.rng.integers(-10, 10)) if odt is I8 else (128 if odt is U8 else 0)
        attrs = dict(kernel=(kh, kw), strides=stride, pads=pads, dilations=dil, groups=groups, layout="NHWC",
                     x_zp=x.type.quant.scalar_zp(), w_zp=wzp, requant=rq, out_zp=ozp,
                     act=self.act(odt, ozp) if requant else None)
        return self.node("conv2d", ins, self.ttype((1, oh, ow, o), odt), attrs)

    def dense(self, *, k, o, rows=(1,), xdt=I8, wdt=I8, wzp=0, per_channel=False, kind="dyadic", bias=True):
        x = self.inp(tuple(rows) + (k,), xdt)
        wt = self.g.const(f"w{self.n}", weights(self.rng, wdt, (o, k)), wdt)
        ins = [x, wt] + ([self.g.const(f"b{self.n}", self.rng.integers(-3000, 3000, o), I32)] if bias else [])
        ozp = int(self.rng.integers(-10, 10))
        attrs = dict(x_zp=x.type.quant.scalar_zp(), w_zp=wzp, requant=self.requant(o, per_channel, kind),
                     out_zp=ozp, act=self.act(I8, ozp))
        return self.node("dense", ins, self.ttype(tuple(rows) + (o,), I8), attrs)

    def add(self, a: Value, b: Value, mode: str, out_shape, odt=I8):
        qa, qb = a.type.quant, b.type.quant
        qo = self.q(odt)
        p = {"a_zp": qa.scalar_zp(), "b_zp": qb.scalar_zp(), "out_zp": qo.scalar_zp(), "act": self.act(odt, qo.scalar_zp())}
        if mode == "tflite":
            sa, sb, so = qa.scalar_scale(), qb.scalar_scale(), qo.scalar_scale()
            ls = 20
            twice = 2 * max(sa, sb)
            p["left_shift"] = ls
            p["a_mult"], p["a_shift"] = rounding.quantize_multiplier(sa / twice)
            p["b_mult"], p["b_shift"] = rounding.quantize_multiplier(sb / twice)
            p["out_mult"], p["out_shift"] = rounding.quantize_multiplier(twice / ((1 << ls) * so))
        else:
            p["a_shift"], p["b_shift"] = int(self.rng.integers(0, 4)), int(self.rng.integers(0, 4))
            p["out_shift"] = int(self.rng.integers(-1, 5))
        return self.node("add", [a, b], self.ttype(out_shape, odt, qo), {"mode": mode, "params": p})

    def mul(self, a: Value, b: Value, out_shape, per_channel=False, kind="dyadic"):
        rq = self.requant(out_shape[-1], per_channel, kind, lo=-12, hi=-6)
        ozp = int(self.rng.integers(-10, 10))
        attrs = dict(a_zp=a.type.quant.scalar_zp(), b_zp=b.type.quant.scalar_zp(), requant=rq,
                     out_zp=ozp, act=self.act(I8, ozp))
        return self.node("mul", [a, b], self.ttype(out_shape, I8), attrs)

    def pool(self, op, *, h, w, c, k, stride, pads, xdt=I8, rounding_mode="away", include_pad=False, requant=False,
             dil=(1, 1)):
        x = self.inp((1, h, w, c), xdt)
        kh, kw = k
        oh = (h + pads[0] + pads[2] - dil[0] * (kh - 1) - 1) // stride[0] + 1
        ow = (w + pads[1] + pads[3] - dil[1] * (kw - 1) - 1) // stride[1] + 1
        attrs = dict(kernel=k, strides=stride, pads=pads, layout="NHWC", count_include_pad=include_pad)
        if dil != (1, 1):
            attrs["dilations"] = dil
        if op == "maxpool":
            return self.node("maxpool", [x], self.ttype((1, oh, ow, c), xdt, x.type.quant), attrs)
        zp = x.type.quant.scalar_zp()
        if requant:
            ozp = int(self.rng.integers(-5, 5))
            attrs.update(in_zp=zp, sum_offset=0, rounding="away", requant=Requant.from_ratio(0.9, False, single=True),
                         out_zp=ozp, act=self.act(xdt, ozp))
            return self.node("avgpool", [x], self.ttype((1, oh, ow, c), xdt), attrs)
        off = zp if not include_pad else int(self.rng.integers(-3, 3))
        attrs.update(in_zp=zp, sum_offset=off, rounding=rounding_mode, requant=None, out_zp=zp, act=self.act(xdt, zp))
        return self.node("avgpool", [x], self.ttype((1, oh, ow, c), xdt, x.type.quant), attrs)

    def softmax(self, shape, xdt=I8, mode="tflite", kind="dyadic"):
        x = self.inp(shape, xdt)
        if mode == "exact":
            table = rounding.softmax_exp_table(x.type.quant.scalar_scale(), xdt.bits)
            rq = Requant.from_ratio(2.0 ** -31 * 256, kind == "shift", single=kind == "single")
            attrs = dict(axis=-1, mode="exact", table=table, requant=rq, out_zp=-128, act=(-128, 127))
        else:
            mult, shift, diff_min = rounding.softmax_params(x.type.quant.scalar_scale())
            attrs = dict(axis=-1, mode="tflite", mult=mult, shift=shift, diff_min=diff_min)
        return self.node("softmax", [x], self.ttype(shape, I8, QParams(1 / 256, -128)), attrs)


def _divisors(n):
    return [d for d in range(1, n + 1) if n % d == 0]


def layer_zoo(seed: int = 0) -> Graph:
    """Many independent randomized layers, every template and variant among them."""
    b = Builder(seed)
    rng = b.rng
    # General convolutions: strides, dilations, asymmetric pads, groups.
    for i in range(10):
        k = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        dil = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        c = int(rng.integers(1, 7))
        groups = int(rng.choice(_divisors(c)))
        if groups == c and i % 2 == 0:
            groups = 1
        o = groups * int(rng.integers(1, 4))
        pads = tuple(int(rng.integers(0, max(k) + (1 if i % 3 else 0))) for _ in range(4))
        pads = (min(pads[0], k[0] * dil[0] - 1 if k[0] > 1 else 0), min(pads[1], k[1] * dil[1] - 1 if k[1] > 1 else 0),
                min(pads[2], k[0] * dil[0] - 1 if k[0] > 1 else 0), min(pads[3], k[1] * dil[1] - 1 if k[1] > 1 else 0))
        if k == (1, 1) and groups == 1 and not any(pads):
            pads = (1, 0, 0, 0)
        b.out(b.conv(h=int(rng.integers(4, 9)), w=int(rng.integers(4, 9)), c=c, o=o, k=k,
                     stride=(int(rng.integers(1, 3)), int(rng.integers(1, 4))), dil=dil, pads=pads, groups=groups,
                     xdt=U8 if i % 4 == 1 else I8, per_channel=i % 2 == 0, kind="shift" if i % 5 == 3 else "dyadic",
                     wzp=(np.arange(o) % 3 - 1) if i == 4 else (2 if i == 7 else 0), bias=i != 5,
                     wdt=I4 if i in (2, 8) else I8))
    # Depthwise, channel multiplier 1 and 2.
    for i in range(4):
        c = int(rng.integers(2, 9))
        m = 1 if i < 2 else 2
        b.out(b.conv(h=int(rng.integers(4, 10)), w=int(rng.integers(4, 10)), c=c, o=c * m, k=(3, 3),
                     stride=(1 + i % 2, 1 + i % 2), dil=(1, 1 + (i == 3)), pads=(1, 1, i % 2, 1), groups=c,
                     xdt=U8 if i == 1 else I8, per_channel=i != 2, kind="shift" if i == 2 else "dyadic",
                     wzp=3 if i == 1 else 0, wdt=I4 if i == 3 else I8))
    # Pointwise 1x1 (plain, strided, int4, weight zero points, int32 accumulator out).
    b.out(b.conv(h=5, w=6, c=8, o=6, k=(1, 1)))
    b.out(b.conv(h=7, w=5, c=5, o=4, k=(1, 1), stride=(2, 2), xdt=U8, per_channel=False))
    b.out(b.conv(h=4, w=4, c=7, o=3, k=(1, 1), wdt=I4, kind="shift"))
    b.out(b.conv(h=3, w=4, c=6, o=5, k=(1, 1), wzp=np.array([1, -2, 0, 3, 1]), xdt=U8))
    b.out(b.conv(h=4, w=3, c=3, o=4, k=(3, 3), pads=(1, 1, 1, 1), requant=False))
    b.out(b.conv(h=4, w=5, c=4, o=3, k=(1, 1), requant=False, bias=False))
    b.out(b.conv(h=6, w=6, c=3, o=4, k=(3, 3), stride=(2, 2), pads=(0, 0, 1, 1), out_dt=U8))
    # Dense.
    b.out(b.dense(k=17, o=5))
    b.out(b.dense(k=9, o=4, rows=(1, 3), xdt=U8, wdt=U8, wzp=np.array([120, 128, 131, 127]), per_channel=True))
    b.out(b.dense(k=12, o=3, wdt=I4, kind="shift", bias=False))
    b.out(b.dense(k=8, o=6, wzp=-3, per_channel=True))
    # CMSIS-NN single rounding.
    b.out(b.conv(h=5, w=5, c=4, o=6, k=(3, 3), pads=(1, 1, 1, 1), kind="single"))
    b.out(b.conv(h=5, w=5, c=4, o=4, k=(3, 3), groups=4, kind="single", per_channel=False))
    b.out(b.dense(k=13, o=5, kind="single", per_channel=True))
    xs1, xs2 = b.inp((1, 3, 4)), b.inp((1, 3, 4))
    b.out(b.mul(xs1, xs2, (1, 3, 4), kind="single"))
    accs = b.inp((1, 2, 5), I32, q=None)
    b.out(b.node("requantize", [accs], b.ttype((1, 2, 5), I8),
                 dict(in_zp=-3, requant=b.requant(5, True, "single", lo=-20, hi=-14), out_zp=2, act=(-128, 127), axis=2)))
    # The other packed weight types.
    b.out(b.dense(k=10, o=3, wdt=DType.INT2))
    b.out(b.dense(k=9, o=4, wdt=DType.UINT4, wzp=8, xdt=U8))
    b.out(b.conv(h=3, w=3, c=11, o=3, k=(1, 1), wdt=DType.INT1))
    b.out(b.conv(h=4, w=4, c=3, o=5, k=(2, 2), wdt=DType.INT2, pads=(1, 0, 0, 1), per_channel=False))
    # Add, both modes, with broadcast and a constant operand.
    for mode in ("tflite", "shift"):
        x1, x2 = b.inp((1, 3, 4, 5)), b.inp((1, 3, 4, 5), U8 if mode == "tflite" else I8)
        b.out(b.add(x1, x2, mode, (1, 3, 4, 5)))
        x3, x4 = b.inp((1, 3, 4, 5)), b.inp((1, 1, 1, 5))
        b.out(b.add(x3, x4, mode, (1, 3, 4, 5)))
        x5 = b.inp((1, 2, 1, 4))
        cst = b.g.const(f"k{mode}", rng.integers(-128, 128, (1, 1, 3, 1)), I8, b.q())
        b.out(b.add(x5, cst, mode, (1, 2, 3, 4)))
    # Mul, per tensor and per channel (last axis), broadcast.
    x1, x2 = b.inp((1, 2, 3, 6)), b.inp((1, 2, 3, 6), U8)
    b.out(b.mul(x1, x2, (1, 2, 3, 6)))
    x3 = b.inp((1, 2, 3, 6))
    x4 = b.g.const("kmul", rng.integers(0, 256, (6,)), U8, b.q(U8))
    b.out(b.mul(x3, x4, (1, 2, 3, 6), per_channel=True))
    x5, x6 = b.inp((1, 4, 5)), b.inp((1, 4, 1))
    b.out(b.mul(x5, x6, (1, 4, 5), kind="shift"))
    # Requantize: int32 -> int8 per channel (NHWC axis 3), int8 -> uint8 per tensor, shift kind.
    acc = b.inp((1, 3, 3, 4), I32, q=None)
    b.out(b.node("requantize", [acc], b.ttype((1, 3, 3, 4), I8),
                 dict(in_zp=0, requant=b.requant(4, True, "dyadic", lo=-20, hi=-14), out_zp=3, act=(-128, 127), axis=3)))
    acc2 = b.inp((1, 10), I32, q=None)
    b.out(b.node("requantize", [acc2], b.ttype((1, 10), I8),
                 dict(in_zp=-7, requant=Requant("shift", np.int64(1), np.int64(20)), out_zp=-1, act=(-100, 100))))
    xi = b.inp((1, 2, 2, 3), I8)
    b.out(b.node("requantize", [xi], b.ttype((1, 2, 2, 3), U8),
                 dict(in_zp=xi.type.quant.scalar_zp(), requant=Requant.from_ratio(0.7, False), out_zp=128, act=(0, 255))))
    acc3 = b.inp((1, 7), I32, q=None)
    b.out(b.node("requantize", [acc3], b.ttype((1, 7), I8),
                 dict(in_zp=1000, requant=Requant.from_ratio(2.0 ** -25, True), out_zp=0, act=None)))
    # Clamp.
    xc = b.inp((1, 9))
    b.out(b.node("clamp", [xc], b.ttype((1, 9), I8, xc.type.quant), dict(lo=-20, hi=30)))
    # Pools.
    b.out(b.pool("maxpool", h=6, w=7, c=3, k=(2, 2), stride=(2, 2), pads=(0, 0, 0, 1)))
    b.out(b.pool("maxpool", h=5, w=5, c=2, k=(3, 3), stride=(1, 2), pads=(1, 1, 1, 0), xdt=U8))
    b.out(b.pool("maxpool", h=6, w=6, c=2, k=(2, 2), stride=(1, 1), pads=(0, 1, 1, 0), dil=(2, 2)))
    for mode in ("away", "even"):
        for inc in (False, True):
            b.out(b.pool("avgpool", h=5, w=6, c=3, k=(3, 2), stride=(2, 2), pads=(1, 0, 1, 1), rounding_mode=mode,
                         include_pad=inc, xdt=U8 if inc else I8))
    b.out(b.pool("avgpool", h=4, w=4, c=5, k=(4, 4), stride=(1, 1), pads=(0, 0, 0, 0)))
    b.out(b.pool("avgpool", h=5, w=5, c=2, k=(2, 3), stride=(1, 2), pads=(0, 1, 1, 0), requant=True))
    # Softmax: short rows, several rows, a long row.
    b.out(b.softmax((1, 10)))
    b.out(b.softmax((1, 3, 7)))
    b.out(b.softmax((1, 300)))
    b.out(b.softmax((1, 2, 12), U8))
    b.out(b.softmax((1, 10), mode="exact"))
    b.out(b.softmax((1, 3, 6), U8, mode="exact", kind="single"))
    b.out(b.softmax((1, 1, 5), mode="exact", kind="shift"))
    # Lookup tables.
    xl = b.inp((1, 11))
    b.out(b.node("lut", [xl], b.ttype((1, 11), I8), dict(table=rng.integers(-128, 128, 256))))
    xl2 = b.inp((1, 2, 5), U8)
    b.out(b.node("lut", [xl2], b.ttype((1, 2, 5), U8), dict(table=rng.integers(0, 256, 256))))
    # Data movement.
    q = b.q()
    xa, xb = b.inp((1, 2, 3, 2), q=q), b.inp((1, 2, 3, 3), q=q)
    b.out(b.node("concat", [xa, xb], b.ttype((1, 2, 3, 5), I8, q), dict(axis=3)))
    kc = b.g.const("kcat", rng.integers(-128, 128, (1, 1, 3, 2)), I8, q)
    xd = b.inp((1, 2, 3, 2), q=q)
    b.out(b.node("concat", [xd, kc, xd], b.ttype((1, 5, 3, 2), I8, q), dict(axis=1)))
    xp = b.inp((1, 3, 4, 2), U8)
    b.out(b.node("pad", [xp], b.ttype((1, 5, 7, 2), U8, xp.type.quant),
                 dict(pads=[(0, 0), (1, 1), (2, 1), (0, 0)], value=xp.type.quant.scalar_zp())))
    xt = b.inp((1, 2, 3, 4))
    b.out(b.node("transpose", [xt], b.ttype((1, 3, 2, 4), I8, xt.type.quant, layout=None), dict(perm=(0, 2, 1, 3))))
    xt2 = b.inp((1, 2, 3, 4))
    b.out(b.node("transpose", [xt2], b.ttype((1, 4, 2, 3), I8, xt2.type.quant, layout=None), dict(perm=(0, 3, 1, 2))))
    xr = b.inp((1, 2, 3, 4))
    b.out(b.node("reshape", [xr], b.ttype((1, 24), I8, xr.type.quant), dict(shape=(1, 24))))
    return b.g


def chain_graph(seed: int = 1) -> Graph:
    """A small network: conv -> requant/clamp chain (in place) -> add -> pool -> reshape ->
    dense -> softmax; exercises in-place reuse, aliasing and scratch in one arena."""
    b = Builder(seed, "chain")
    x = b.inp((1, 8, 8, 3))
    c1 = b.conv(x=x, h=8, w=8, c=3, o=8, k=(3, 3), pads=(1, 1, 1, 1), requant=False)
    q = b.q()
    r1 = b.node("requantize", [c1], b.ttype((1, 8, 8, 8), I8, q),
                dict(in_zp=0, requant=Requant.from_ratio(2.0 ** -10, False), out_zp=q.scalar_zp(), act=(-128, 127)))
    cl = b.node("clamp", [r1], b.ttype((1, 8, 8, 8), I8, q), dict(lo=q.scalar_zp(), hi=127))
    dw = b.conv(x=cl, h=8, w=8, c=8, o=8, k=(3, 3), pads=(1, 1, 1, 1), groups=8)
    pw = b.conv(x=dw, h=8, w=8, c=8, o=8, k=(1, 1))
    s = b.add(pw, cl, "tflite", (1, 8, 8, 8))
    p = b.node("maxpool", [s], b.ttype((1, 4, 4, 8), I8, s.type.quant),
               dict(kernel=(2, 2), strides=(2, 2), pads=(0, 0, 0, 0), layout="NHWC", count_include_pad=False))
    f = b.node("reshape", [p], b.ttype((1, 128), I8, p.type.quant), dict(shape=(1, 128)))
    wt = b.g.const("fcw", b.rng.integers(-127, 128, (10, 128)), I8)
    d = b.node("dense", [f, wt], b.ttype((1, 10), I8),
               dict(x_zp=f.type.quant.scalar_zp(), w_zp=0, requant=Requant.from_ratio(0.002, False), out_zp=0, act=(-128, 127)))
    mult, shift, diff_min = rounding.softmax_params(0.1)
    sm = b.node("softmax", [d], b.ttype((1, 10), I8, QParams(1 / 256, -128)),
                dict(axis=-1, mode="tflite", mult=mult, shift=shift, diff_min=diff_min))
    b.out(sm)
    return b.g


def random_inputs(g: Graph, n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    feeds = {}
    for v in g.inputs:
        dt = v.type.dtype
        shape = (n,) + tuple(v.type.shape[1:]) if v.type.shape else (n,)
        if dt is I32:
            feeds[v.name] = rng.integers(-(1 << 24), 1 << 24, shape).astype(np.int32)
            feeds[v.name].reshape(-1)[:4] = [-(1 << 31), (1 << 31) - 1, -1, 0][: feeds[v.name].size]
        else:
            feeds[v.name] = rng.integers(dt.qmin, dt.qmax + 1, shape).astype(dt.np)
    return feeds


def reference(g: Graph, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The interpreter's outputs, one sample at a time (constants do not carry the batch)."""
    from compiler.ir import interpreter

    n = next(iter(feeds.values())).shape[0]
    per = [interpreter.run(g, {k: v[i:i + 1] for k, v in feeds.items()}) for i in range(n)]
    return {k: np.concatenate([p[k] for p in per]) for k in per[0]}
