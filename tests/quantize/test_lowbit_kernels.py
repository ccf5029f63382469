"""Binary (int1) and 2-bit / ternary (int2) weight kernels: the add/subtract kernels of
compiler/codegen/lowbit.py, built on the host with gcc and clang (-Wall -Wextra -Werror, and
once with ASan+UBSan), equal the reference interpreter bit for bit; the weights are packed one
(or two) bits per weight, one byte-aligned row per output channel."""

from __future__ import annotations

import numpy as np
import pytest

from compiler.codegen import generate_project, lowbit
from compiler.ir.dtypes import DType
from compiler.sim import run_host
from tests.codegen._graphs import Builder, random_inputs, reference
from tests.codegen._tools import SANITIZE, STRICT, compilers, have, sanitizers_work

I1, I2, U8 = DType.INT1, DType.INT2, DType.UINT8


def _ternary(b: Builder, v):
    """Make a 2-bit weight constant ternary ({-1, 0, +1}), as TWN / narrow-range Quant produce."""
    w = v.producer.inputs[1]
    w.const = np.clip(w.const, -1, 1).astype(w.const.dtype)
    return v


def lowbit_zoo():
    b = Builder(seed=7, name="lowbit")
    for wdt in (I1, I2):
        # 3x3 padded, strided, dilated; K = 27 (3 full bytes of binary weights + 3, or 6 + 3 of 2-bit).
        b.out(b.conv(h=7, w=6, c=3, o=5, k=(3, 3), pads=(1, 1, 1, 1), wdt=wdt))
        b.out(b.conv(h=9, w=8, c=4, o=6, k=(3, 3), stride=(2, 2), pads=(0, 1, 1, 0), dil=(1, 2), wdt=wdt,
                     xdt=U8, kind="single"))
        # Grouped and depthwise (channel multiplier 2), per-tensor shift requantization.
        b.out(b.conv(h=5, w=5, c=4, o=8, k=(3, 3), pads=(1, 1, 1, 1), groups=2, wdt=wdt, kind="shift",
                     per_channel=False))
        b.out(b.conv(h=6, w=6, c=8, o=16, k=(3, 3), pads=(1, 1, 1, 1), groups=8, wdt=wdt))
        # Pointwise with K a multiple of 8 (no tail) and a long K; int32 output without requantization.
        b.out(b.conv(h=3, w=4, c=16, o=7, k=(1, 1), wdt=wdt))
        b.out(b.conv(h=2, w=2, c=200, o=3, k=(1, 1), wdt=wdt, xdt=U8))
        b.out(b.conv(h=3, w=3, c=5, o=4, k=(2, 2), wdt=wdt, requant=False, bias=False))
        # Dense: K below one byte, with a tail, without, several rows.
        b.out(b.dense(k=3, o=4, wdt=wdt))
        b.out(b.dense(k=37, o=10, wdt=wdt, per_channel=True, xdt=U8))
        b.out(b.dense(k=64, o=5, rows=(1, 3), wdt=wdt, kind="shift", bias=False))
    # Ternary weights proper.
    b.out(_ternary(b, b.conv(h=6, w=6, c=6, o=6, k=(3, 3), pads=(1, 1, 1, 1), wdt=I2)))
    b.out(_ternary(b, b.dense(k=50, o=6, wdt=I2)))
    return b.g


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    g = lowbit_zoo()
    out = tmp_path_factory.mktemp("lowbit")
    generate_project(g, "host", out, model_name="lowbit", model_sha256="0" * 64)
    feeds = random_inputs(g, 3, seed=3)
    return g, out, feeds, reference(g, feeds)


def _compare(g, got, ref):
    bad = [v.name for v in g.outputs if not np.array_equal(got[v.name], ref[v.name])]
    assert not bad, f"outputs differ from the interpreter: {bad}"


def test_every_lowbit_layer_uses_the_add_subtract_kernels(project):
    g, out, _, _ = project
    src = (out / "lowbit_kernels.c").read_text() if (out / "lowbit_kernels.c").exists() else \
        "".join(p.read_text() for p in out.glob("*.c"))
    weighted = [n for n in g.nodes if n.op in ("conv2d", "dense")]
    assert all(lowbit.applies(n) for n in weighted)
    assert src.count("without a multiply") == len(weighted)
    # Both ways of summing: nibble tables (4+ outputs per input row) and masked additions (depthwise).
    assert 0 < src.count("subset-sum tables") < len(weighted)
    assert "mcuc_ld_s1" not in src and "mcuc_ld_s2" not in src


@pytest.mark.parametrize("cc", compilers())
def test_lowbit_kernels_bit_exact(project, cc):
    g, out, feeds, ref = project
    _compare(g, run_host(out, feeds, cc=cc, cflags=" ".join(STRICT + ["-O2"])), ref)


def test_lowbit_kernels_sanitized(project):
    cc = "gcc" if have("gcc") else "clang"
    if not sanitizers_work(cc):
        pytest.skip(f"{cc} cannot build with ASan/UBSan here")
    g, out, feeds, ref = project
    _compare(g, run_host(out, feeds, cc=cc, cflags=" ".join(STRICT + SANITIZE + ["-O1"])), ref)


@pytest.mark.parametrize("dt", [I1, I2])
def test_rows_are_packed_byte_aligned(dt):
    rng = np.random.default_rng(0)
    w = rng.choice([-1, 1], (3, 11)) if dt is I1 else rng.integers(-2, 2, (3, 11))
    data, rb = lowbit.pack_rows(w, dt)
    assert rb == (2 if dt is I1 else 3) and data.size == 3 * rb
    assert np.array_equal(lowbit.unpack_rows(data, dt, 3, 11), w)
