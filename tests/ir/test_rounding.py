"""compiler/ir/rounding.py against independent exact-arithmetic definitions, on edge values.

The references below use Python's unbounded ints and fractions, written from the rules'
definitions (not from the implementation), so a shared mistake is unlikely.
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest

from compiler.ir import rounding as r

I32_MIN, I32_MAX = -(2**31), 2**31 - 1
EDGE = sorted({0, 1, -1, 2, -2, 3, -3, 5, -5, 127, -128, 255, -255, 2**15, -(2**15), 2**30, -(2**30), 2**30 + 1,
               -(2**30) - 1, I32_MAX, I32_MIN, I32_MAX - 1, I32_MIN + 1, 12345678, -12345678, 2**24 + 7, -(2**24) - 7})
RNG = np.random.default_rng(0)
RANDOM = [int(v) for v in RNG.integers(I32_MIN, I32_MAX, 200, endpoint=True)]
SHIFTS = list(range(0, 32))


def round_half_away(f: Fraction) -> int:
    n = math.floor(abs(f) + Fraction(1, 2))
    return n if f >= 0 else -n


def round_half_even(f: Fraction) -> int:
    fl = math.floor(f)
    rem = f - fl
    if rem > Fraction(1, 2) or (rem == Fraction(1, 2) and fl % 2 == 1):
        return fl + 1
    return fl


def trunc_div(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def ref_srdhm(a: int, b: int) -> int:
    """gemmlowp: (a*b + (a*b >= 0 ? 2^30 : 1 - 2^30)) / 2^31, C truncation; INT32_MIN^2 saturates."""
    if a == b == I32_MIN:
        return I32_MAX
    ab = a * b
    nudge = 2**30 if ab >= 0 else 1 - 2**30
    return trunc_div(ab + nudge, 2**31)


def test_srdhm_edges_and_random():
    vals = EDGE + RANDOM[:60]
    pairs = list(itertools.product(vals, vals))
    a = np.array([p[0] for p in pairs])
    b = np.array([p[1] for p in pairs])
    got = r.srdhm(a, b)
    want = [ref_srdhm(x, y) for x, y in pairs]
    assert got.tolist() == want


@pytest.mark.parametrize("e", SHIFTS)
def test_rdbpot_is_round_half_away(e):
    xs = EDGE + RANDOM + [k * (1 << e) + (1 << e) // 2 for k in range(-4, 4)] + [k * (1 << e) - (1 << e) // 2 for k in range(-4, 4)]
    xs = [x for x in xs if I32_MIN <= x <= I32_MAX]
    got = r.rdbpot(np.array(xs), e)
    assert got.tolist() == [round_half_away(Fraction(x, 1 << e)) for x in xs]


@pytest.mark.parametrize("s", list(range(-8, 32)))
def test_shift_round_half_even(s):
    xs = EDGE + RANDOM
    if s > 0:
        xs = xs + [k * (1 << s) + (1 << (s - 1)) for k in range(-5, 5)]  # exact halves
    xs = [x for x in xs if I32_MIN <= x <= I32_MAX]
    got = r.shift_round_half_even(np.array(xs), s)
    if s > 0:
        want = [round_half_even(Fraction(x, 1 << s)) for x in xs]
    else:
        want = [min(max(x << -s, I32_MIN), I32_MAX) for x in xs]
    assert got.tolist() == want


def test_exact_halves_go_to_even():
    assert r.shift_round_half_even(np.array([1, 3, 5, -1, -3, -5]), 1).tolist() == [0, 2, 2, 0, -2, -2]
    assert r.rdbpot(np.array([1, 3, 5, -1, -3, -5]), 1).tolist() == [1, 2, 3, -1, -2, -3]


@pytest.mark.parametrize("real", [1e-10, 2.0**-31, 2.0**-32, 0.000123, 0.0123, 0.25, 0.5, 0.7071, 0.999999, 1.0, 1.5, 3.0, 1000.0])
def test_quantize_multiplier_represents_ratio(real):
    m, s = r.quantize_multiplier(real)
    if real < 2.0**-32:
        assert (m, s) == (0, 0) or abs(m * 2.0 ** (s - 31) - real) <= real * 2**-30
        return
    assert 2**30 <= m < 2**31
    assert abs(m * 2.0 ** (s - 31) - real) <= real * 2.0**-31


def test_quantize_multiplier_rejects_bad_ratios():
    for bad in (float("nan"), float("inf"), -1.0):
        with pytest.raises(ValueError):
            r.quantize_multiplier(bad)
    assert r.quantize_multiplier(0.0) == (0, 0)


@pytest.mark.parametrize("shift", [-31, -20, -7, -1, 0, 1, 3])
def test_multiply_by_quantized_multiplier_is_double_rounding(shift):
    ms = [2**30, 2**30 + 1, 1518500250, 2**31 - 1]
    xs = [x for x in EDGE + RANDOM[:50]]
    for m in ms:
        got = r.multiply_by_quantized_multiplier(np.array(xs), m, shift)
        for x, g in zip(xs, got.tolist()):
            left = max(shift, 0)
            xl = min(max(x << left, I32_MIN), I32_MAX)
            want = round_half_away(Fraction(ref_srdhm(xl, m), 1 << max(-shift, 0)))
            assert g == want, (x, m, shift)


def test_double_rounding_differs_from_single_rounding():
    # TFLite's documented behaviour: 5 * 2^-2 via M = 2^30, shift = -1 rounds twice (1.25 -> 2).
    assert int(r.multiply_by_quantized_multiplier(5, 2**30, -1)) == 2
    assert int(r.shift_round_half_even(5, 2)) == 1


@pytest.mark.parametrize("mode", ["away", "even"])
def test_round_div(mode):
    for n in (1, 2, 3, 4, 9, 25, 49, 125):
        xs = list(range(-3 * n, 3 * n + 1)) + [I32_MAX, I32_MIN, 123456789, -123456789]
        got = r.round_div(np.array(xs), n, mode).tolist()
        ref = round_half_away if mode == "away" else round_half_even
        assert got == [ref(Fraction(x, n)) for x in xs], n


def test_saturate():
    assert r.saturate(np.array([-1000, -128, 0, 127, 1000]), -128, 127).tolist() == [-128, -128, 0, 127, 127]
    assert r.sat_i32(np.array([2**40, -(2**40)])).tolist() == [I32_MAX, I32_MIN]


def test_pow2_exponent():
    assert r.pow2_exponent(0.125) == -3 and r.pow2_exponent(1.0) == 0 and r.pow2_exponent(1024.0) == 10
    assert r.pow2_exponent(0.1) is None and r.pow2_exponent(0.0) is None and r.pow2_exponent(-0.5) is None


def test_exp_on_negative_values_tracks_exp():
    a = np.arange(-(31 << 26), 1, 1 << 20, dtype=np.int64)  # Q5.26 values in [-31, 0]
    got = r.exp_on_negative_values(a) / 2.0**31
    want = np.exp(a / 2.0**26)
    assert np.max(np.abs(got - want)) < 2e-8 * 2**5 + 1e-6
    assert int(r.exp_on_negative_values(0)) == I32_MAX


def test_one_over_one_plus_x():
    x = np.linspace(0, 2**31 - 1, 1000).astype(np.int64)
    got = r.one_over_one_plus_x_for_x_in_0_1(x) / 2.0**31
    want = 1.0 / (1.0 + x / 2.0**31)
    assert np.max(np.abs(got - want)) < 1e-8


def test_softmax_s8_close_to_float_and_saturating():
    rng = np.random.default_rng(1)
    for scale in (0.01, 0.05, 0.1, 0.25):
        m, s, dmin = r.softmax_params(scale)
        x = rng.integers(-128, 128, (64, 10))
        y = r.softmax_s8(x, m, s, dmin)
        xf = x * scale
        e = np.exp(xf - xf.max(axis=1, keepdims=True))
        ref = np.clip(np.round(e / e.sum(axis=1, keepdims=True) * 256) - 128, -128, 127)
        assert np.max(np.abs(y - ref)) <= 1
        assert y.min() >= -128 and y.max() <= 127


def test_clz32():
    xs = [0, 1, 2, 3, 2**31 - 1, 2**31, 2**32 - 1, 12345]
    assert r.clz32(np.array(xs)).tolist() == [32 - int(x).bit_length() for x in xs]
