/* Evaluates one mcuc_round.h function per input line: "<function id> <arg> <arg> <arg>".
 * Prints one decimal result per line; tests/codegen/test_round_header.py compares them with
 * compiler/ir/rounding.py. */
#include <stdio.h>
#include <stdint.h>

#include "mcuc_round.h"

int main(void)
{
    int id;
    long long a, b, c;
    long long r;
    while (scanf("%d %lld %lld %lld", &id, &a, &b, &c) == 4) {
        switch (id) {
        case 0: r = mcuc_saturate((int64_t)a, (int64_t)b, (int64_t)c); break;
        case 1: r = mcuc_sat_i32((int64_t)a); break;
        case 2: r = mcuc_srdhm((int32_t)a, (int32_t)b); break;
        case 3: r = mcuc_rdbpot((int32_t)a, (int)b); break;
        case 4: r = mcuc_shift_round_half_even((int64_t)a, (int)b); break;
        case 5: r = mcuc_mul_by_quantized_multiplier((int32_t)a, (int32_t)b, (int32_t)c); break;
        case 6: r = mcuc_requantize_dyadic((int32_t)a, (int32_t)b, (int32_t)c); break;
        case 7: r = mcuc_requantize_shift((int64_t)a, (int32_t)b); break;
        case 8: r = mcuc_round_div_away((int64_t)a, (int64_t)b); break;
        case 9: r = mcuc_round_div_even((int64_t)a, (int64_t)b); break;
        case 10: r = mcuc_mult_by_pow2_sat((int32_t)a, (int)b); break;
        case 11: r = mcuc_exp_on_negative_values((int32_t)a); break;
        case 12: r = mcuc_one_over_one_plus_x_for_x_in_0_1((int32_t)a); break;
        case 13: r = mcuc_clz32((uint32_t)a); break;
        case 14: r = mcuc_sat_shl_i32((int64_t)a, (int)b); break;
        case 15: r = mcuc_multiply_single_round((int64_t)a, (int32_t)b, (int32_t)c); break;
        case 16: r = mcuc_requantize_single((int64_t)a, (int32_t)b, (int32_t)c); break;
        default: return 2;
        }
        printf("%lld\n", r);
    }
    return 0;
}
