"""runtime_c/include/mcuc_round.h equals compiler/ir/rounding.py element for element.

A C driver evaluates every header function on an edge-value set (negatives, exact halves,
INT32_MIN/MAX, shifts 0 and 31, random values from a fixed seed); it is built with gcc and clang,
strict warnings and ASan+UBSan (aborting on the first report), so the header is also shown free
of undefined behaviour on those inputs.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from compiler import resources
from compiler.ir import rounding as R

from ._tools import SANITIZE, STRICT, compilers, sanitizers_work

HERE = Path(__file__).parent
MIN, MAX = R.INT32_MIN, R.INT32_MAX


def _edges() -> np.ndarray:
    base = [MIN, MIN + 1, MIN + 2, -(1 << 30) - 1, -(1 << 30), -(1 << 30) + 1, -65537, -65536, -32769, -32768,
            -257, -256, -255, -129, -128, -127, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 127, 128, 255, 256,
            32767, 32768, 65535, 65536, (1 << 30) - 1, 1 << 30, (1 << 30) + 1, MAX - 2, MAX - 1, MAX]
    rng = np.random.default_rng(1234)
    rnd = rng.integers(MIN, MAX, 120, endpoint=True)
    small = rng.integers(-5000, 5000, 60)
    return np.unique(np.concatenate([np.array(base, np.int64), rnd, small]))


def _halves(shifts) -> np.ndarray:
    """Values exactly at (and next to) a rounding tie for each shift."""
    out = []
    for s in shifts:
        if s <= 0:
            continue
        half = 1 << (s - 1)
        unit = 1 << s
        for k in (-3, -2, -1, 0, 1, 2, 3):
            for d in (-1, 0, 1):
                v = k * unit + half + d
                if MIN <= v <= MAX:
                    out.append(v)
    return np.unique(np.array(out, np.int64))


def _cases():
    """(function id, python reference, list of argument tuples)."""
    e = _edges()
    rng = np.random.default_rng(99)
    cases = []

    los_his = [(MIN, MAX), (-128, 127), (0, 255), (-5, 5), (3, 3)]
    big = np.array([-(1 << 40), -(1 << 33), MIN - 1, MIN, -1, 0, 1, MAX, MAX + 1, 1 << 33, 1 << 40], np.int64)
    xs = np.concatenate([e, big])
    cases.append((0, lambda a, b, c: R.saturate(a, b, c), [(x, lo, hi) for x in xs for lo, hi in los_his]))
    cases.append((1, lambda a, b, c: R.sat_i32(a), [(x, 0, 0) for x in xs]))

    pairs = [(a, b) for a in e[::2] for b in e[::2]]
    pairs += [tuple(p) for p in rng.integers(MIN, MAX, (400, 2), endpoint=True)]
    pairs += [(MIN, MIN), (MIN, MAX), (MAX, MIN), (MAX, MAX), (MIN, -1), (-1, MIN)]
    cases.append((2, lambda a, b, c: R.srdhm(a, b), [(a, b, 0) for a, b in pairs]))

    shifts = list(range(0, 32))
    hv = _halves(shifts)
    rd = [(x, s, 0) for s in shifts for x in np.unique(np.concatenate([e[::3], hv]))]
    rd += [(x, s, 0) for s in (32, 33, 34, 35) for x in (MIN, MIN + 1, -(1 << 30), -1, 0, 1, MAX)]
    cases.append((3, lambda a, b, c: R.rdbpot(a, b), rd))

    sr_shifts = list(range(-31, 41))
    wide = np.concatenate([e[::3], hv, np.array([MIN - 1, MIN * 2, MAX * 2 + 1, MAX + 1], np.int64)])
    sr = [(x, s, 0) for s in sr_shifts for x in wide]
    cases.append((4, lambda a, b, c: R.shift_round_half_even(a, b), sr))
    cases.append((7, lambda a, b, c: R.requantize(a, "shift", 1, b), sr))

    mults = [0, 1 << 30, (1 << 30) + 1, 1518500250, MAX - 1, MAX] + list(rng.integers(1 << 30, MAX, 6))
    mq = [(x, m, s) for x in e[::2] for m in mults for s in (-31, -20, -8, -1, 0, 1, 2, 8, 20, 30)]
    mq += [(x, m, s) for x in e[::5] for m in mults[:3] for s in range(-31, 32)]
    cases.append((5, lambda a, b, c: R.multiply_by_quantized_multiplier(a, b, c), mq))
    cases.append((6, lambda a, b, c: R.requantize(a, "dyadic", b, c), mq))

    ns = [1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 16, 25, 49, 100, 255, 65536, MAX]
    rdx = np.concatenate([e, np.arange(-60, 61, dtype=np.int64), np.array([MIN - 7, MAX + 9], np.int64)])
    rdv = [(x, n, 0) for x in rdx for n in ns]
    cases.append((8, lambda a, b, c: R.round_div(a, b, "away"), rdv))
    cases.append((9, lambda a, b, c: R.round_div(a, b, "even"), rdv))

    def pow2(a, b, c):
        return np.array([R.mult_by_pow2_sat(int(x), int(s)) for x, s in zip(a, b)], np.int64)

    cases.append((10, pow2, [(x, s, 0) for x in e[::2] for s in range(0, 31)]))

    # exp_on_negative_values is defined for a <= 0, one_over_one_plus_x for a in [0, 2^31).
    neg = np.unique(np.concatenate([
        e[e <= 0],
        -np.arange(0, 64, dtype=np.int64) * (1 << 24),
        -np.arange(0, 64, dtype=np.int64) * (1 << 24) - 1,
        -np.arange(0, 64, dtype=np.int64) * (1 << 24) + 1,
        -rng.integers(0, 1 << 31, 3000, endpoint=False),
    ]))
    neg = neg[(neg <= 0) & (neg >= MIN)]
    cases.append((11, lambda a, b, c: R.exp_on_negative_values(a), [(a, 0, 0) for a in neg]))
    pos = np.unique(np.concatenate([e[e >= 0], rng.integers(0, 1 << 31, 3000), np.array([0, 1, 1 << 30, MAX], np.int64)]))
    cases.append((12, lambda a, b, c: R.one_over_one_plus_x_for_x_in_0_1(a), [(a, 0, 0) for a in pos]))

    cl = [0, 1, 2, 3, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF] + [1 << k for k in range(32)] + [(1 << k) - 1 for k in range(1, 33)]
    cl += list(rng.integers(0, 1 << 32, 100))
    cases.append((13, lambda a, b, c: R.clz32(a), [(v, 0, 0) for v in cl]))

    def shl(a, b, c):
        return np.array([min(max(int(x) << int(s), MIN), MAX) for x, s in zip(a, b)], np.int64)

    # Single rounding, on its domain: int32 accumulators or int32 values minus a zero point,
    # shift <= 31 (the reference wraps beyond, C saturates).
    sx = np.concatenate([e[::2], np.array([MIN - 1000, MAX + 1000], np.int64)])
    sr1 = [(x, m, s) for x in sx for m in mults for s in (-31, -20, -8, -1, 0, 1, 2, 8, 20, 30, 31)]
    sr1 += [(x, m, s) for x in hv for m in (1 << 30,) for s in range(-31, 1)]
    cases.append((15, lambda a, b, c: R.multiply_single_round(a, b, c), sr1))
    cases.append((16, lambda a, b, c: R.requantize(a, "single", b, c), sr1))

    cases.append((14, shl, [(x, s, 0) for x in np.concatenate([e[::2], big[1:-1]]) for s in range(0, 40)]))
    return cases


@pytest.fixture(scope="module")
def vectors():
    lines, expected = [], []
    for fid, fn, args in _cases():
        arr = np.array([[int(v) for v in t] for t in args], dtype=object)
        a = np.array(arr[:, 0].tolist(), np.int64)
        b = np.array(arr[:, 1].tolist(), np.int64)
        c = np.array(arr[:, 2].tolist(), np.int64)
        ref = np.asarray(fn(a, b, c), np.int64).reshape(-1)
        assert ref.shape == a.shape
        for t, r in zip(args, ref):
            lines.append(f"{fid} {int(t[0])} {int(t[1])} {int(t[2])}")
            expected.append((fid, tuple(int(v) for v in t), int(r)))
    return "\n".join(lines) + "\n", expected


def _run(cc: str, flags: list[str], tmp_path: Path, vectors) -> None:
    text, expected = vectors
    exe = tmp_path / f"round_{cc}"
    inc = resources.runtime_dir() / "include"
    r = subprocess.run([cc, *flags, "-O2", f"-I{inc}", str(HERE / "round_driver.c"), "-o", str(exe)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    p = subprocess.run([str(exe)], input=text, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    got = [int(v) for v in p.stdout.split()]
    assert len(got) == len(expected)
    bad = [(fid, args, ref, g) for (fid, args, ref), g in zip(expected, got) if ref != g]
    assert not bad, f"{len(bad)} mismatches, first: {bad[:5]}"


@pytest.mark.parametrize("cc", compilers())
def test_header_matches_python_sanitized(cc, tmp_path, vectors):
    if not sanitizers_work(cc):
        pytest.skip(f"{cc} cannot build with ASan/UBSan here")
    _run(cc, STRICT + SANITIZE, tmp_path, vectors)


@pytest.mark.parametrize("cc", compilers())
def test_header_matches_python_optimized(cc, tmp_path, vectors):
    _run(cc, STRICT + ["-O3", "-pedantic"], tmp_path, vectors)


@pytest.mark.parametrize("cc", compilers())
def test_header_portable_shifts_match_python(cc, tmp_path, vectors):
    """The shifts that compilers other than GCC/Clang take, checked under sanitizers."""
    flags = STRICT + ["-DMCUC_ROUND_PORTABLE"] + (SANITIZE if sanitizers_work(cc) else ["-O3"])
    _run(cc, flags, tmp_path, vectors)


def test_vector_set_covers_every_function(vectors):
    _, expected = vectors
    assert {fid for fid, _, _ in expected} == set(range(17))



def _dyadic_zp_small_rows() -> np.ndarray:
    """(a, m, n, zp) over the legal ranges of mcuc_dyadic_zp_small (|a| < 2^28,
    0 <= m <= INT32_MAX, n in 1..21, |zp| <= 255): range ends crossed with every n, ties of the
    srdhm and rdbpot roundings, and random values."""
    rng = np.random.default_rng(29)
    amax = (1 << 28) - 1
    a_edge = [-amax, -amax + 1, -(1 << 27), -65536, -1000, -3, -2, -1, 0, 1, 2, 3, 1000, 65536, 1 << 27, amax - 1, amax]
    m_edge = [0, 1, 2, 1 << 30, (1 << 30) + 1, MAX - 1, MAX]
    rows = [(a, m, n, zp) for a in a_edge for m in m_edge for n in range(1, 22) for zp in (-255, -128, 0, 5, 255)]
    k = 40000
    a = np.concatenate([rng.integers(-amax, amax, k, endpoint=True), rng.integers(-5000, 5000, k)])
    m = np.concatenate([rng.integers(0, MAX, k, endpoint=True), rng.integers(1 << 30, MAX, k, endpoint=True)])
    n = rng.integers(1, 21, 2 * k, endpoint=True)
    zp = rng.integers(-255, 255, 2 * k, endpoint=True)
    rows += list(zip(a.tolist(), m.tolist(), n.tolist(), zp.tolist()))
    # With m = 2^30, srdhm(a, m) = a / 2 rounded half away from zero (odd a: an srdhm tie), and
    # a around 2 (2j + 1) 2^(n-1) puts that result on and next to an rdbpot tie.
    for nn in range(1, 22):
        for j in (-3, -2, -1, 0, 1, 2):
            v = (2 * j + 1) << (nn - 1)
            for dv in (-1, 0, 1):
                for aa in (2 * (v + dv) - 1, 2 * (v + dv), 2 * (v + dv) + 1):
                    if abs(aa) < 1 << 28:
                        rows += [(aa, 1 << 30, nn, 0), (aa, 1 << 30, nn, -200), (aa, 1 << 30, nn, 255)]
    return np.array(rows, np.int64)


DYADIC_ZP_DRIVER = r"""
#include <stdio.h>
#include <stdint.h>
#include "mcuc_round.h"
int main(void)
{
    long long a, m, s, d;
    while (scanf("%lld %lld %lld %lld", &a, &m, &s, &d) == 4) {
        printf("%ld %ld\n", (long)mcuc_dyadic_zp_small((int32_t)a, (int32_t)m, (int)s, (int32_t)d),
               (long)mcuc_dyadic_zp_small_relu((int32_t)a, (int32_t)m, (int)s, (int32_t)d));
    }
    return 0;
}
"""


@pytest.mark.parametrize("cc", compilers())
def test_dyadic_zp_small_matches_python(cc, tmp_path):
    """The branch-free requantization of the RISC-V kernels: mcuc_dyadic_zp_small equals
    rounding.rdbpot(rounding.srdhm(a, m), n) + zp on its legal ranges, and
    mcuc_dyadic_zp_small_relu equals it once both are clamped to [lo, hi] with lo >= zp (checked
    for lo = zp and lo = zp + 1); table constants as lowering computes them (s = n + 1,
    d = 2^n + zp 2^(n+1) + 1). Under sanitizers where they work, optimized otherwise."""
    rows = _dyadic_zp_small_rows()
    a, m, n, zp = rows.T
    ref = np.asarray(R.rdbpot(R.srdhm(a, m), n), np.int64) + zp
    d = (1 << n) + zp * (1 << (n + 1)) + 1
    text = "\n".join(f"{x} {y} {s} {c}" for x, y, s, c in zip(a.tolist(), m.tolist(), (n + 1).tolist(), d.tolist())) + "\n"
    src = tmp_path / "dzp.c"
    src.write_text(DYADIC_ZP_DRIVER)
    exe = tmp_path / "dzp"
    flags = STRICT + (SANITIZE if sanitizers_work(cc) else ["-O3"])
    inc = resources.runtime_dir() / "include"
    r = subprocess.run([cc, *flags, "-O2", f"-I{inc}", str(src), "-o", str(exe)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    p = subprocess.run([str(exe)], input=text, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    got = np.array(p.stdout.split(), np.int64).reshape(-1, 2)
    assert got.shape == (len(rows), 2)
    bad = np.flatnonzero(got[:, 0] != ref)
    assert bad.size == 0, f"{bad.size} mismatches, first (a, m, n, zp): {rows[bad[:5]].tolist()}"
    # The ReLU form differs where v < 0 (so it must be exercised), never after the clamp.
    assert np.any(got[:, 1] != ref)
    for lo in (zp, zp + 1):
        clamp_ref, clamp_got = np.clip(ref, lo, 127 + 255), np.clip(got[:, 1], lo, 127 + 255)
        bad = np.flatnonzero(clamp_got != clamp_ref)
        assert bad.size == 0, f"relu: {bad.size} mismatches, first (a, m, n, zp): {rows[bad[:5]].tolist()}"
