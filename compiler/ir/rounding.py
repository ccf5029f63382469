"""Integer rounding and saturation: the single definition used by the whole compiler.

Every integer result in mcuc is computed by the functions here; the C header
runtime_c/include/mcuc_round.h mirrors each one line for line (same names, ``mcuc_`` prefix),
and tests/ir/test_rounding.py checks the two against each other on edge values.

Two requantization rules exist, chosen per operation when the IR is lowered:

* **dyadic** (a scale ratio that is not a power of two, or any ratio in a model that follows
  TFLite's arithmetic): TFLite / CMSIS-NN's default "double rounding".
  ``y = rdbpot(srdhm(x << left, M), right)`` with ``M`` in [2^30, 2^31) so that
  ``ratio = M * 2^(shift - 31)``; ``left = max(shift, 0)``, ``right = max(-shift, 0)``.
  ``srdhm`` rounds half up (away from zero for the sign of the product) at bit 31,
  ``rdbpot`` rounds half away from zero. This is what makes MLPerf Tiny models match
  TFLite Micro bit for bit. ``x << left`` saturates to int32 (TFLite leaves that overflow
  undefined; it never happens for ratios below 1, the common case).
* **single** (a ratio that is not a power of two, in models that follow ONNX arithmetic):
  ``y = round_half_even(x * M / 2^n)`` with ``n = 31 - shift``, one rounding of the exact 64-bit
  product (CMSIS-NN's single-rounding option, but ties to even). Double rounding's intermediate
  result has only ``2^shift`` resolution, which flips ~0.1% of outputs per layer away from the
  exactly rounded value that onnxruntime's float arithmetic gives. Ties to even because ratios
  like 0.037 / 0.05 put exact halves within float32 precision of many products, where
  onnxruntime's float division lands on the half and rounds it to even.
* **shift** (a ratio that is an exact power of two, in models that follow ONNX arithmetic):
  ``y = round_half_even(x / 2^s)`` for ``s > 0`` and ``x * 2^-s`` (saturated to int32) for
  ``s <= 0``. Half-to-even is ONNX QuantizeLinear's rounding, so power-of-two models are bit
  exact with onnxruntime; it costs one add, one and and one shift more than truncation.

After requantization the zero point is added and the result saturates to the activation range
(``clamp``) -- always in that order.

All functions take and return numpy int64 arrays (or Python ints); int64 holds every
intermediate exactly, and results that C keeps in int32 are checked to fit.
"""

from __future__ import annotations

import math

import numpy as np

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1


def _i64(x) -> np.ndarray:
    return np.asarray(x, dtype=np.int64)


def saturate(x, lo: int, hi: int) -> np.ndarray:
    """Clamp to [lo, hi]."""
    return np.clip(_i64(x), lo, hi)


def sat_i32(x) -> np.ndarray:
    return saturate(x, INT32_MIN, INT32_MAX)


def srdhm(a, b) -> np.ndarray:
    """Saturating rounding doubling high multiply (gemmlowp / TFLite / arm_nn_doubling_high_mult).

    ``(a * b + nudge) / 2^31`` truncated toward zero, nudge = 2^30 if a*b >= 0 else 1 - 2^30;
    the single overflow case a = b = INT32_MIN gives INT32_MAX.
    """
    a = _i64(a)
    b = _i64(b)
    ab = a * b
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    num = ab + nudge
    # C division truncates toward zero; numpy's // floors.
    q = np.where(num >= 0, num >> 31, -((-num) >> 31))
    return np.where((a == INT32_MIN) & (b == INT32_MIN), INT32_MAX, q)


def rdbpot(x, exponent) -> np.ndarray:
    """Rounding divide by 2^exponent, ties away from zero (gemmlowp RoundingDivideByPOT).

    ``exponent`` in [0, 31].
    """
    x = _i64(x)
    e = _i64(exponent)
    mask = (np.int64(1) << e) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> e) + (remainder > threshold)


def shift_round_half_even(x, s) -> np.ndarray:
    """``x / 2^s`` rounded half to even for s > 0; ``x * 2^-s`` saturated to int32 for s <= 0."""
    x = _i64(x)
    s = _i64(s)
    sr = np.maximum(s, 0)
    q = x >> sr
    r = x - (q << sr)
    half = np.where(sr > 0, np.int64(1) << np.maximum(sr - 1, 0), 0)
    up = (sr > 0) & ((r > half) | ((r == half) & ((q & 1) == 1)))
    right = q + up
    left = sat_i32(x << np.maximum(-s, 0))
    return np.where(s > 0, right, left)


def multiply_by_quantized_multiplier(x, multiplier, shift) -> np.ndarray:
    """TFLite MultiplyByQuantizedMultiplier: ``x * M * 2^(shift - 31)`` with double rounding."""
    x = _i64(x)
    shift = _i64(shift)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    return rdbpot(srdhm(sat_i32(x << left), multiplier), right)


def multiply_single_round(x, multiplier, shift) -> np.ndarray:
    """``x * M * 2^(shift - 31)`` rounded once, ties to even (|x| <= 2^31, M < 2^31: exact in int64)."""
    return shift_round_half_even(_i64(x) * _i64(multiplier), 31 - _i64(shift))


def requantize(x, kind: str, multiplier, shift) -> np.ndarray:
    """Scale int32 accumulators by a requantization (before the zero point and clamp)."""
    if kind == "dyadic":
        return multiply_by_quantized_multiplier(x, multiplier, shift)
    if kind == "single":
        return multiply_single_round(x, multiplier, shift)
    if kind == "shift":
        return shift_round_half_even(x, shift)
    raise ValueError(f"unknown requantization kind {kind!r}")


def requantize_div(x, count, kind: str, multiplier, shift) -> np.ndarray:
    """``x * ratio / count`` rounded once, ties to even: an average scaled to another grid.

    ``single``: ``round_half_even(x * M / (count * 2^(31 - shift)))``; ``shift``:
    ``round_half_even(x / (count * 2^s))`` (``x * 2^-s / count`` for s <= 0). Exact rational
    rounding in int64, whatever the window's count.
    """
    x = _i64(x)
    count = _i64(count)
    if kind == "single":
        num, den_shift = x * _i64(multiplier), 31 - _i64(shift)
    elif kind == "shift":
        num, den_shift = x, _i64(shift)
    else:
        raise ValueError(f"requantization kind {kind!r} has no division form")
    num = np.where(den_shift < 0, num << np.maximum(-den_shift, 0), num)
    return round_div(num, count << np.maximum(den_shift, 0), "even")


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite QuantizeMultiplier: ``real = M * 2^(shift - 31)``, M in [2^30, 2^31) or 0.

    Computed on the double exactly as TFLite does (frexp, round half away from zero), so that
    multipliers match TFLite Micro's bit for bit. Ratios below 2^-32 underflow to M = 0.
    """
    if not math.isfinite(real) or real < 0:
        raise ValueError(f"requantization ratio must be finite and >= 0, got {real}")
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = math.floor(q * (1 << 31) + 0.5)
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return int(q_fixed), int(shift)


def pow2_exponent(real: float) -> int | None:
    """``k`` if ``real == 2^k`` exactly, else None."""
    if not math.isfinite(real) or real <= 0:
        return None
    m, e = math.frexp(real)
    return e - 1 if m == 0.5 else None


def round_div(x, n, mode: str) -> np.ndarray:
    """Integer ``x / n`` (n > 0) rounded per mode.

    ``away``: TFLite's average-pool rule ``x > 0 ? (x + n/2) / n : (x - n/2) / n`` with C
    truncation, i.e. ties away from zero. ``even``: ties to even (ONNX's rounding).
    """
    x = _i64(x)
    n = _i64(n)
    if mode == "away":
        num = np.where(x > 0, x + n // 2, x - n // 2)
        return np.where(num >= 0, num // n, -((-num) // n))
    if mode == "even":
        q = x // n  # floor
        r = x - q * n
        twice = 2 * r
        up = (twice > n) | ((twice == n) & ((q & 1) == 1))
        return q + up
    raise ValueError(f"unknown rounding mode {mode!r}")


def round_half_even_float(x) -> np.ndarray:
    """ONNX QuantizeLinear's rounding of a float (numpy's rint is ties-to-even)."""
    return np.rint(np.asarray(x, dtype=np.float64)).astype(np.int64)


# ---------------------------------------------------------------------------------------------
# Fixed-point helpers of TFLite's integer softmax (gemmlowp fixedpoint.h semantics, as used by
# TFLite Micro and CMSIS-NN arm_nn_softmax_common_s8). Q-formats are int32 with implied
# integer bits; "scaled diff" values use 5 integer bits, the sum of exponentials 12.
# ---------------------------------------------------------------------------------------------

SOFTMAX_DIFF_INT_BITS = 5
SOFTMAX_ACCUM_BITS = 12


def mult_by_pow2_sat(x, e: int) -> np.ndarray:
    """``x * 2^e`` saturated to int32 (e in [0, 31))."""
    x = _i64(x)
    thresh = (1 << (31 - e)) - 1
    return np.where(x > thresh, INT32_MAX, np.where(x < -thresh, INT32_MIN, x << e))


def _select(mask, a, b):
    return np.where(mask, a, b)


def exp_on_negative_values(a) -> np.ndarray:
    """exp(a) for a <= 0 in Q5.26, result in Q0.31 (gemmlowp exp_on_negative_values<5>)."""
    a = _i64(a)
    shift = 24
    a_mod_quarter_minus_one_quarter = (a & ((1 << shift) - 1)) - (1 << shift)
    remainder = a_mod_quarter_minus_one_quarter - a
    # exp on [-1/4, 0): Taylor around -1/8 in Q0.31.
    x = (a_mod_quarter_minus_one_quarter << 5) + (1 << 28)
    x = sat_i32(x)
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4 = srdhm(x2, x2)
    x4_over_4 = rdbpot(x4, 2)
    poly = rdbpot(srdhm(x4_over_4 + x3, 715827883) + x2, 1)
    result = 1895147668 + srdhm(1895147668, x + poly)
    for k, mult in enumerate((1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242)):
        bit = np.int64(1) << (shift + k)
        result = _select((remainder & bit) != 0, srdhm(result, mult), result)
    return np.where(a == 0, INT32_MAX, result)


def one_over_one_plus_x_for_x_in_0_1(a) -> np.ndarray:
    """1 / (1 + a) for a in [0, 1) Q0.31, result Q0.31 (three Newton-Raphson steps)."""
    a = _i64(a)
    s = a + INT32_MAX
    half_denominator = np.where(s >= 0, (s + 1) // 2, -((-(s - 1)) // 2))
    x = 1515870810 + srdhm(half_denominator, -1010580540)
    one_quarter = 1 << 29
    for _ in range(3):
        x = x + mult_by_pow2_sat(srdhm(x, one_quarter - srdhm(half_denominator, x)), 2)
    return mult_by_pow2_sat(x, 1)


def clz32(x) -> np.ndarray:
    """Count leading zeros of a uint32 (32 for 0)."""
    x = _i64(x) & 0xFFFFFFFF
    return np.vectorize(lambda v: 32 - int(v).bit_length(), otypes=[np.int64])(x)


def softmax_exp_table(input_scale: float, bits: int = 8) -> np.ndarray:
    """exp(-d * scale) in Q30 for every difference d = max - x of a ``bits``-bit input (exact mode)."""
    d = np.arange(1 << bits, dtype=np.float64)
    return np.floor(np.exp(-d * float(input_scale)) * (1 << 30) + 0.5).astype(np.int64)


def softmax_exact(x, table: np.ndarray) -> np.ndarray:
    """Softmax probabilities in Q31 along the last axis: round_half_even(T[max - x] * 2^31 / sum T).

    The "exact" integer softmax: a table of exp in Q30 and one integer division per element,
    so results are the correctly rounded probabilities except for the table's 2^-30 precision.
    """
    x = _i64(x)
    t = np.asarray(table, np.int64)[x.max(axis=-1, keepdims=True) - x]
    total = t.sum(axis=-1, keepdims=True)
    return round_div(t << 31, total, "even")


def softmax_params(input_scale: float, beta: float = 1.0) -> tuple[int, int, int]:
    """TFLite PreprocessSoftmaxScaling + CalculateInputRadius: (multiplier, left_shift, diff_min)."""
    real = min(beta * input_scale * (1 << (31 - SOFTMAX_DIFF_INT_BITS)), float((1 << 31) - 1))
    mult, shift = quantize_multiplier(real)
    if shift < 0:
        raise ValueError("softmax input scale too small for the integer softmax")
    radius = math.floor(((1 << SOFTMAX_DIFF_INT_BITS) - 1) * (1 << (31 - SOFTMAX_DIFF_INT_BITS)) / (1 << shift))
    return mult, shift, -radius


def softmax_s8(x, mult: int, shift: int, diff_min: int, out_min: int = -128, out_max: int = 127) -> np.ndarray:
    """TFLite Micro's int8 softmax along the last axis, output scale 1/256, zero point -128."""
    x = _i64(x)
    mx = x.max(axis=-1, keepdims=True)
    diff = x - mx
    valid = diff >= diff_min
    scaled = srdhm(sat_i32(diff * (1 << shift)), mult)
    e = exp_on_negative_values(scaled)
    total = np.where(valid, rdbpot(e, SOFTMAX_ACCUM_BITS), 0).sum(axis=-1, keepdims=True)
    headroom = clz32(total)
    bits_over_unit = SOFTMAX_ACCUM_BITS - headroom + 23
    # (total << headroom) has its top bit set; minus 2^31 maps it into [0, 1) in Q0.31.
    normalized = ((total << headroom) & 0xFFFFFFFF) - (1 << 31)
    shifted_scale = one_over_one_plus_x_for_x_in_0_1(normalized)
    res = rdbpot(srdhm(shifted_scale, e), bits_over_unit) + out_min
    return np.where(valid, saturate(res, out_min, out_max), out_min)
