/*
 * mcuc_round.h -- integer rounding and saturation of mcuc, in C.
 *
 * This header mirrors compiler/ir/rounding.py function for function (same names with the
 * mcuc_ prefix); tests/codegen/test_round_header.py compares the two element for element on
 * edge values. Every requantization in generated code goes through these functions so that
 * the C output equals the reference interpreter bit for bit.
 *
 * Written in C99 without undefined behaviour: no signed overflow (intermediates that may leave
 * int32 are computed in int64), no left shifts of negative values (masks go through unsigned
 * arithmetic, left shifts of signed values are multiplications by a power of two), no shift
 * counts >= the operand width. Floor shifts of negative values are right shifts only under
 * GCC/Clang, which define them as arithmetic shifts; elsewhere (or with MCUC_ROUND_PORTABLE)
 * they go through unsigned values.
 */
#ifndef MCUC_ROUND_H
#define MCUC_ROUND_H

#include <limits.h>
#include <stdint.h>

#define MCUC_INT32_MIN ((int32_t)(-2147483647 - 1))
#define MCUC_INT32_MAX ((int32_t)2147483647)

/* Integer bits of the softmax fixed-point formats (rounding.SOFTMAX_*). */
#define MCUC_SOFTMAX_DIFF_INT_BITS 5
#define MCUC_SOFTMAX_ACCUM_BITS 12

/* ---- saturation ------------------------------------------------------------------------- */

static inline int64_t mcuc_saturate(int64_t x, int64_t lo, int64_t hi)
{
    return x < lo ? lo : (x > hi ? hi : x);
}

static inline int32_t mcuc_sat_i32(int64_t x)
{
    return (int32_t)mcuc_saturate(x, MCUC_INT32_MIN, MCUC_INT32_MAX);
}

static inline int32_t mcuc_clamp_i32(int32_t x, int32_t lo, int32_t hi)
{
    return x < lo ? lo : (x > hi ? hi : x);
}

/* ---- shifts without undefined behaviour ------------------------------------------------- */

/* floor(x / 2^s) for s in [0, 31]: ~x is non-negative when x is negative, and
 * floor(x / 2^s) == ~(~x >> s) there, so only non-negative values are shifted. */
static inline int32_t mcuc_asr32(int32_t x, int s)
{
#if defined(__GNUC__) && !defined(MCUC_ROUND_PORTABLE)
    /* GCC and Clang define >> of a negative value as the arithmetic shift (implementation-
     * defined, not undefined): one ASR, where the portable form below costs a branch. */
    return x >> s;
#else
    return x >= 0 ? (int32_t)((uint32_t)x >> s) : (int32_t)~(~(uint32_t)x >> s);
#endif
}

/* floor(x / 2^s) for s in [0, 63]. */
static inline int64_t mcuc_asr64(int64_t x, int s)
{
#if defined(__GNUC__) && !defined(MCUC_ROUND_PORTABLE)
    return x >> s;
#else
    return x >= 0 ? (int64_t)((uint64_t)x >> s) : (int64_t)~(~(uint64_t)x >> s);
#endif
}

/* sat_i32(x * 2^left) for any int64 x and left in [0, 63], without overflowing. */
static inline int32_t mcuc_sat_shl_i32(int64_t x, int left)
{
    int64_t lim;
    if (left >= 32) {
        return x > 0 ? MCUC_INT32_MAX : (x < 0 ? MCUC_INT32_MIN : 0);
    }
    lim = (int64_t)1 << (31 - left);
    if (x >= lim) {
        return MCUC_INT32_MAX;
    }
    if (x < -lim) {
        return MCUC_INT32_MIN;
    }
    return (int32_t)(x * ((int64_t)1 << left));
}

/* ---- the two requantization rules --------------------------------------------------------- */

/* Saturating rounding doubling high multiply (rounding.srdhm). */
static inline int32_t mcuc_srdhm(int32_t a, int32_t b)
{
    int64_t p;
    uint32_t u;
    if (a == MCUC_INT32_MIN && b == MCUC_INT32_MIN) {
        return MCUC_INT32_MAX;
    }
    /* The reference truncates (ab + nudge) / 2^31 toward zero; for ab < 0 that is
     * ceil((ab + 1 - 2^30) / 2^31) == floor((ab + 2^30) / 2^31), the formula for ab >= 0 too.
     * So one multiply-accumulate and bits 31..62 of the sum, without a sign test (the product
     * is above -2^62 here, so the result fits int32). */
    p = (int64_t)a * b + ((int64_t)1 << 30);
    u = (uint32_t)((uint64_t)p >> 31);
    return u <= 0x7FFFFFFFu ? (int32_t)u : -(int32_t)~u - 1;
}

/* Rounding divide by 2^exponent, ties away from zero (rounding.rdbpot). Exponents above 31
 * (the softmax's num_bits_over_unit can reach 35) leave 0 or -1 and round as the reference. */
static inline int32_t mcuc_rdbpot(int32_t x, int exponent)
{
    uint32_t half;
    if (exponent >= 32) {
        return (exponent == 32 && x == MCUC_INT32_MIN) ? -1 : 0;
    }
    if (exponent == 0) {
        return x;
    }
    /* The reference adds 1 to floor(x / 2^exponent) when the remainder exceeds
     * 2^(exponent-1) - 1 + (x < 0): that is floor((x + 2^(exponent-1)) / 2^exponent) for x >= 0
     * (in uint32, where the sum cannot wrap) and floor((x + 2^(exponent-1) - 1) / 2^exponent)
     * for x < 0 (in int32, where it cannot overflow). One add and one shift, no mask. */
    half = 1u << (exponent - 1);
    if (x >= 0) {
        return (int32_t)(((uint32_t)x + half) >> exponent);
    }
    return mcuc_asr32(x + (int32_t)(half - 1u), exponent);
}

/* x / 2^s rounded half to even for s > 0; x * 2^-s saturated to int32 for s <= 0
 * (rounding.shift_round_half_even). s in [-63, 62]. */
static inline int64_t mcuc_shift_round_half_even(int64_t x, int s)
{
    int64_t q;
    uint64_t r, half;
    if (s <= 0) {
        return mcuc_sat_shl_i32(x, -s);
    }
    q = mcuc_asr64(x, s);
    r = (uint64_t)x & ((((uint64_t)1) << s) - 1u);
    half = ((uint64_t)1) << (s - 1);
    if (r > half || (r == half && ((uint64_t)q & 1u))) {
        q += 1;
    }
    return q;
}

/* TFLite MultiplyByQuantizedMultiplier: x * M * 2^(shift - 31), double rounding
 * (rounding.multiply_by_quantized_multiplier). */
static inline int32_t mcuc_mul_by_quantized_multiplier(int32_t x, int32_t multiplier, int32_t shift)
{
    int left = shift > 0 ? (int)shift : 0;
    int right = shift > 0 ? 0 : (int)-shift;
    return mcuc_rdbpot(mcuc_srdhm(mcuc_sat_shl_i32(x, left), multiplier), right);
}

/* x * M * 2^(shift - 31) rounded once, half to even (rounding.multiply_single_round).
 * |x| <= 2^32 keeps the product inside int64; shift in [-31, 62]. The result is not saturated:
 * callers add the zero point and clamp in int64, as the reference does. */
static inline int64_t mcuc_multiply_single_round(int64_t x, int32_t multiplier, int32_t shift)
{
    return mcuc_shift_round_half_even(x * multiplier, 31 - (int)shift);
}

/* rounding.requantize, kind 'single'. */
static inline int64_t mcuc_requantize_single(int64_t x, int32_t multiplier, int32_t shift)
{
    return mcuc_multiply_single_round(x, multiplier, shift);
}

/* rounding.requantize, kind 'dyadic'. */
static inline int32_t mcuc_requantize_dyadic(int32_t x, int32_t multiplier, int32_t shift)
{
    return mcuc_mul_by_quantized_multiplier(x, multiplier, shift);
}

/* rounding.requantize, kind 'shift'. */
static inline int64_t mcuc_requantize_shift(int64_t x, int32_t shift)
{
    return mcuc_shift_round_half_even(x, (int)shift);
}

/* ---- fused epilogues: out = clamp(requant(acc) + zp, lo, hi), in that order --------------- */

static inline int32_t mcuc_out_dyadic(int32_t acc, int32_t multiplier, int32_t shift, int32_t zp, int32_t lo, int32_t hi)
{
    return (int32_t)mcuc_saturate((int64_t)mcuc_requantize_dyadic(acc, multiplier, shift) + zp, lo, hi);
}

static inline int32_t mcuc_out_single(int64_t acc, int32_t multiplier, int32_t shift, int32_t zp, int32_t lo, int32_t hi)
{
    return (int32_t)mcuc_saturate(mcuc_requantize_single(acc, multiplier, shift) + zp, lo, hi);
}

static inline int32_t mcuc_out_shift(int64_t acc, int32_t shift, int32_t zp, int32_t lo, int32_t hi)
{
    return (int32_t)mcuc_saturate(mcuc_requantize_shift(acc, shift) + zp, lo, hi);
}

/* No requantization: the accumulator itself, clamped (zero point not added, as the reference). */
static inline int32_t mcuc_out_none(int64_t acc, int32_t lo, int32_t hi)
{
    return (int32_t)mcuc_saturate(acc, lo, hi);
}

/* mcuc_requantize_dyadic(a, m, -n) + zp, unclamped, for |a| < 2^28, 0 <= m <= INT32_MAX,
 * 1 <= n <= 21 and |zp| <= 255, given s = n + 1 and d = 2^n + zp 2^(n+1) + 1 (per-channel table
 * constants). For cores without a one-instruction 32x32->64 multiply (RV32: mul + mulh): 4a fits
 * int32, so the high word alone is h = floor(a m / 2^30), and srdhm's floor((a m + 2^30) / 2^31)
 * is v = floor((h + 1) / 2) (h + 1 is an integer: the dropped fraction cannot reach the next
 * half). rdbpot(v, n) + zp = floor((v + 2^(n-1) - (v < 0) + zp 2^n) / 2^n), and nested floors
 * by 2 and 2^n are one floor by 2^(n+1): floor((h + d - 2 (v < 0)) / 2^s), where v < 0 exactly
 * when h < -1. |h| < 2^29 and |d| < 2^30 keep the sum inside int32. No branch. */
static inline int32_t mcuc_dyadic_zp_small(int32_t a, int32_t m, int s, int32_t d)
{
    const int32_t h = (int32_t)mcuc_asr64((int64_t)(a * 4) * m, 32);
    return mcuc_asr32(h + d - 2 * (h < -1), s);
}

/* mcuc_dyadic_zp_small for outputs then clamped to a lower bound lo >= zp (a fused ReLU): the
 * (v < 0) step is dropped. It only changes results with v < 0, where both forms are <= zp and the
 * clamp makes them lo. Same bounds. */
static inline int32_t mcuc_dyadic_zp_small_relu(int32_t a, int32_t m, int s, int32_t d)
{
    const int32_t h = (int32_t)mcuc_asr64((int64_t)(a * 4) * m, 32);
    return mcuc_asr32(h + d, s);
}

/* ---- division with rounding (average pooling) --------------------------------------------- */

/* x / n, n > 0, ties away from zero (rounding.round_div mode 'away'). */
static inline int64_t mcuc_round_div_away(int64_t x, int64_t n)
{
    int64_t num = x > 0 ? x + n / 2 : x - n / 2;
    return num / n;
}

/* x / n, n > 0, ties to even (rounding.round_div mode 'even'). */
static inline int64_t mcuc_round_div_even(int64_t x, int64_t n)
{
    int64_t q = x / n;
    int64_t r = x - q * n;
    int64_t twice;
    if (r < 0) {
        q -= 1;
        r += n;
    }
    twice = 2 * r;
    if (twice > n || (twice == n && ((uint64_t)q & 1u))) {
        q += 1;
    }
    return q;
}

/* rounding.requantize_div, kind 'single': x * M / (count * 2^(31 - shift)), ties to even.
 * |x * M| < 2^62 (x is a window sum of 8/16-bit values) and 31 - shift in [0, 31]. */
static inline int64_t mcuc_requantize_div_single(int64_t x, int32_t count, int32_t multiplier, int32_t shift)
{
    return mcuc_round_div_even(x * multiplier, (int64_t)count << (31 - shift));
}

/* rounding.requantize_div, kind 'shift': x * 2^-shift / count, ties to even. */
static inline int64_t mcuc_requantize_div_shift(int64_t x, int32_t count, int32_t shift)
{
    if (shift >= 0) {
        return mcuc_round_div_even(x, (int64_t)count << shift);
    }
    return mcuc_round_div_even(x * ((int64_t)1 << -shift), count);
}

/* ---- fixed-point helpers of the integer softmax (gemmlowp semantics) ---------------------- */

/* x * 2^e saturated to int32, e in [0, 31) (rounding.mult_by_pow2_sat). */
static inline int32_t mcuc_mult_by_pow2_sat(int32_t x, int e)
{
    int32_t thresh = (int32_t)((((uint32_t)1) << (31 - e)) - 1u);
    if (x > thresh) {
        return MCUC_INT32_MAX;
    }
    if (x < -thresh) {
        return MCUC_INT32_MIN;
    }
    return (int32_t)((int64_t)x * ((int64_t)1 << e));
}

/* exp(a) for a <= 0 in Q5.26, result Q0.31 (rounding.exp_on_negative_values). */
static inline int32_t mcuc_exp_on_negative_values(int32_t a)
{
    static const int32_t mults[7] = {1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242};
    int32_t a_mod_quarter_minus_one_quarter = (int32_t)((uint32_t)a & 0x00FFFFFFu) - (1 << 24);
    int64_t remainder = (int64_t)a_mod_quarter_minus_one_quarter - a;
    int32_t x, x2, x3, x4, x4_over_4, poly, result;
    int k;
    if (a == 0) {
        return MCUC_INT32_MAX;
    }
    x = mcuc_sat_i32((int64_t)a_mod_quarter_minus_one_quarter * 32 + (1 << 28));
    x2 = mcuc_srdhm(x, x);
    x3 = mcuc_srdhm(x2, x);
    x4 = mcuc_srdhm(x2, x2);
    x4_over_4 = mcuc_rdbpot(x4, 2);
    poly = mcuc_rdbpot(mcuc_srdhm(x4_over_4 + x3, 715827883) + x2, 1);
    result = 1895147668 + mcuc_srdhm(1895147668, x + poly);
    for (k = 0; k < 7; ++k) {
        if (((uint64_t)remainder >> (24 + k)) & 1u) {
            result = mcuc_srdhm(result, mults[k]);
        }
    }
    return result;
}

/* 1 / (1 + a) for a in [0, 1) Q0.31, result Q0.31 (rounding.one_over_one_plus_x_for_x_in_0_1). */
static inline int32_t mcuc_one_over_one_plus_x_for_x_in_0_1(int32_t a)
{
    int64_t s = (int64_t)a + MCUC_INT32_MAX;
    int32_t half_denominator = (int32_t)(s >= 0 ? (s + 1) / 2 : -((-(s - 1)) / 2));
    int32_t x = 1515870810 + mcuc_srdhm(half_denominator, -1010580540);
    const int32_t one_quarter = 1 << 29;
    int i;
    for (i = 0; i < 3; ++i) {
        x = x + mcuc_mult_by_pow2_sat(mcuc_srdhm(x, one_quarter - mcuc_srdhm(half_denominator, x)), 2);
    }
    return mcuc_mult_by_pow2_sat(x, 1);
}

/* Count leading zeros of a uint32 (32 for 0) (rounding.clz32). */
static inline int mcuc_clz32(uint32_t x)
{
    int n = 0;
    if (x == 0u) {
        return 32;
    }
#if defined(__GNUC__) && UINT_MAX == 0xFFFFFFFFu
    (void)n;
    return __builtin_clz(x);
#else
    while (!(x & 0x80000000u)) {
        x <<= 1;
        ++n;
    }
    return n;
#endif
}

#endif /* MCUC_ROUND_H */
