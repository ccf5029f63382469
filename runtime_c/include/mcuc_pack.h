/*
 * mcuc_pack.h -- reading element i of a weight array, for every weight element type.
 *
 * Sub-byte weights are stored packed in flash (compiler/codegen/cdata.py: element i sits in
 * bits [(i % k) * bits, ...) of byte i / k, low bits first, k = 8 / bits) and unpacked here, so
 * kernels index weights by element whatever their width. Sign extension uses (v ^ m) - m, which
 * needs no shift of a negative value.
 */
#ifndef MCUC_PACK_H
#define MCUC_PACK_H

#include <stdint.h>

static inline int32_t mcuc_ld_s8(const int8_t *w, int32_t i) { return w[i]; }
/* int8 weights pre-extended for Armv7E-M DSP kernels: each group of four (w0, w1, w2, w3) is
 * stored as int16 (w0, w2, w1, w3), i.e. the two words SXTB16 and SXTB16 ROR #8 would make of
 * the packed bytes. Element i of the original order, for portable code. */
static inline int32_t mcuc_ld_s8x(const int16_t *w, int32_t i) { return w[(i & ~3) | ((i & 1) << 1) | ((i >> 1) & 1)]; }
static inline int32_t mcuc_ld_u8(const uint8_t *w, int32_t i) { return w[i]; }
static inline int32_t mcuc_ld_s16(const int16_t *w, int32_t i) { return w[i]; }
static inline int32_t mcuc_ld_u16(const uint16_t *w, int32_t i) { return w[i]; }

static inline int32_t mcuc_ld_s4(const uint8_t *w, int32_t i)
{
    uint32_t v = ((uint32_t)w[i >> 1] >> ((uint32_t)(i & 1) * 4u)) & 0xFu;
    return (int32_t)(v ^ 0x8u) - 8;
}

static inline int32_t mcuc_ld_u4(const uint8_t *w, int32_t i)
{
    return (int32_t)(((uint32_t)w[i >> 1] >> ((uint32_t)(i & 1) * 4u)) & 0xFu);
}

static inline int32_t mcuc_ld_s2(const uint8_t *w, int32_t i)
{
    uint32_t v = ((uint32_t)w[i >> 2] >> ((uint32_t)(i & 3) * 2u)) & 0x3u;
    return (int32_t)(v ^ 0x2u) - 2;
}

/* Binary weights: bit 1 is +1, bit 0 is -1. */
static inline int32_t mcuc_ld_s1(const uint8_t *w, int32_t i)
{
    uint32_t v = ((uint32_t)w[i >> 3] >> (uint32_t)(i & 7)) & 0x1u;
    return (int32_t)(v * 2u) - 1;
}

#endif /* MCUC_PACK_H */
