/* mcuc_xpulp.h - the Xpulp (RI5CY / GAP-8, "Xpulpv2") subset the PULP-NN-style kernels use.
 *
 * No compiler on these machines emits Xpulp and no assembler knows its mnemonics, so every
 * instruction is hand-encoded with GNU as `.insn` directives; the register allocator still picks
 * the registers. Define MCUC_XPULP to get the instructions; without it every helper is portable C
 * with identical semantics (bit for bit, including 32-bit wrap-around), so one kernel source builds
 * for plain RV32IMC and for RI5CY.
 *
 * Encodings (bit fields) are those of the PULP-era CV32E40P user manual,
 * docs/source/instruction_set_extensions.rst (openhwgroup/cv32e40p, commit 0822318c, which still
 * carries the RI5CY/Xpulpv2 opcodes; later releases moved to the cv.* custom-opcode map), cited per
 * instruction below as [ISE <section>]. compiler/sim/xpulp.py decodes the same words; docs/riscv.md
 * has the table.
 *
 * The compiler never sees these instructions, so it cannot schedule around them; the helpers are
 * single-instruction asm blocks with exact operand constraints. Post-increment loads write two
 * registers (rd and the pointer): rd is early-clobber so GCC never makes it the pointer register.
 */
#ifndef MCUC_XPULP_H
#define MCUC_XPULP_H

#include <stdint.h>

/* Assembly text of each instruction, for use inside hand-written asm blocks (hardware-loop
 * bodies, where the helpers below cannot be called). Arguments are register operand strings,
 * e.g. "%[acc]" or "a0"; immediates are integer constant text. */

/* [ISE "SIMD" encoding table]: funct5 in [31:27], bits 26:25 = 0, OP-V major opcode 101 0111
 * (0x57), funct3 001 = vector-vector byte form (.b). .insn r takes funct7 = funct5 << 2. */
#define MCUC_XP_ASM_SDOTSP_B(rd, rs1, rs2)  ".insn r 0x57, 1, 0x5c, " rd ", " rs1 ", " rs2 "\n\t" /* funct5 10111 */
#define MCUC_XP_ASM_SDOTUSP_B(rd, rs1, rs2) ".insn r 0x57, 1, 0x54, " rd ", " rs1 ", " rs2 "\n\t" /* funct5 10101 */
#define MCUC_XP_ASM_DOTSP_B(rd, rs1, rs2)   ".insn r 0x57, 1, 0x4c, " rd ", " rs1 ", " rs2 "\n\t" /* funct5 10011 */
#define MCUC_XP_ASM_ADD_B(rd, rs1, rs2)     ".insn r 0x57, 1, 0x00, " rd ", " rs1 ", " rs2 "\n\t" /* funct5 00000 */

/* [ISE "MAC Encoding"]: funct7 010 0001, funct3 000, opcode OP 011 0011. rd += rs1 * rs2. */
#define MCUC_XP_ASM_MAC(rd, rs1, rs2) ".insn r 0x33, 0, 0x21, " rd ", " rs1 ", " rs2 "\n\t"

/* [ISE "General ALU Encoding"]: funct7 000 0010, opcode 011 0011; funct3 100 min, 101 minu,
 * 110 max, 111 maxu. */
#define MCUC_XP_ASM_MIN(rd, rs1, rs2)  ".insn r 0x33, 4, 0x02, " rd ", " rs1 ", " rs2 "\n\t"
#define MCUC_XP_ASM_MINU(rd, rs1, rs2) ".insn r 0x33, 5, 0x02, " rd ", " rs1 ", " rs2 "\n\t"
#define MCUC_XP_ASM_MAX(rd, rs1, rs2)  ".insn r 0x33, 6, 0x02, " rd ", " rs1 ", " rs2 "\n\t"
#define MCUC_XP_ASM_MAXU(rd, rs1, rs2) ".insn r 0x33, 7, 0x02, " rd ", " rs1 ", " rs2 "\n\t"

/* [ISE "General ALU Encoding", second table]: funct7 000 1010, Is2 (5-bit unsigned) in the rs2
 * field, funct3 001 clip / 010 clipu. Written as an I-type whose 12-bit immediate is
 * funct7 << 5 | Is2 = 0x140 | Is2, because the field holds a constant, not a register. */
#define MCUC_XP_ASM_IS2_CHECK_(is2) \
    ".if (" #is2 ") < 0 || (" #is2 ") > 31\n\t.error \"p.clip: Is2 must be 0..31\"\n\t.endif\n\t"
#define MCUC_XP_ASM_CLIP(rd, rs1, is2) \
    MCUC_XP_ASM_IS2_CHECK_(is2) ".insn i 0x33, 1, " rd ", " rs1 ", 0x140 + " #is2 "\n\t"
#define MCUC_XP_ASM_CLIPU(rd, rs1, is2) \
    MCUC_XP_ASM_IS2_CHECK_(is2) ".insn i 0x33, 2, " rd ", " rs1 ", 0x140 + " #is2 "\n\t"

/* [ISE "Post-Incrementing Load & Store", Encoding]: register-immediate loads are I-type with
 * opcode 000 1011 (custom-0, 0x0b), funct3 000 lb / 100 lbu / 001 lh / 101 lhu / 010 lw;
 * register-register post-increment loads use funct3 111 and funct7 000 0000 lb / 010 0000 lbu /
 * 000 1000 lh / 010 1000 lhu / 001 0000 lw. Stores with immediate post-increment are S-type with
 * opcode 010 1011 (custom-1, 0x2b), funct3 000 sb / 001 sh / 010 sw. */
#define MCUC_XP_ASM_LB_PI(rd, rs1, imm)  ".insn i 0x0b, 0, " rd ", " rs1 ", " #imm "\n\t"
#define MCUC_XP_ASM_LBU_PI(rd, rs1, imm) ".insn i 0x0b, 4, " rd ", " rs1 ", " #imm "\n\t"
#define MCUC_XP_ASM_LW_PI(rd, rs1, imm)  ".insn i 0x0b, 2, " rd ", " rs1 ", " #imm "\n\t"
#define MCUC_XP_ASM_LB_PR(rd, rs1, rs2)  ".insn r 0x0b, 7, 0x00, " rd ", " rs1 ", " rs2 "\n\t"
#define MCUC_XP_ASM_LBU_PR(rd, rs1, rs2) ".insn r 0x0b, 7, 0x20, " rd ", " rs1 ", " rs2 "\n\t"
#define MCUC_XP_ASM_LW_PR(rd, rs1, rs2)  ".insn r 0x0b, 7, 0x10, " rd ", " rs1 ", " rs2 "\n\t"
#define MCUC_XP_ASM_SB_PI(rs2, rs1, imm) ".insn s 0x2b, 0, " rs2 ", " #imm "(" rs1 ")\n\t"
#define MCUC_XP_ASM_SW_PI(rs2, rs1, imm) ".insn s 0x2b, 2, " rs2 ", " #imm "(" rs1 ")\n\t"

/* [ISE "Hardware Loops", Encoding]: opcode 111 1011 (custom-3, 0x7b), bits 11:8 zero, bit 7 = L
 * (loop 0 or 1; written as rd = x0 / x1), uimmL[11:0] in bits 31:20:
 *   funct3 000 lp.starti L, uimmL    lpstart[L] = pc + (uimmL << 1)
 *   funct3 001 lp.endi   L, uimmL    lpend[L]   = pc + (uimmL << 1)
 *   funct3 010 lp.count  L, rs1      lpcount[L] = rs1
 *   funct3 011 lp.counti L, uimmL    lpcount[L] = uimmL
 *   funct3 100 lp.setup  L, rs1, uimmL       start = pc + 4, end = pc + (uimmL << 1), count = rs1
 *   funct3 101 lp.setupi L, uimmL, uimmS     start = pc + 4, end = pc + (uimmS << 1), count = uimmL
 *     (uimmS[4:0] sits in the rs1 field, bits 19:15).
 * The end address is the one just after the last instruction of the body (CV32E40P user manual
 * v1.7.2, corev_hw_loop.rst). The body must be uncompressed 32-bit instructions, with word-aligned
 * start and end, at least 3 instructions, no branches or jumps (same section, "constraints").
 *
 * GNU as only accepts constants in .insn immediates, not forward label differences, so the loop
 * macros take the body length in instructions (n) and MCUC_XP_ASM_HWLOOP_END(n) fails the assembly
 * if the body between the setup (local label 9:) and the end is not exactly n instructions.
 * `.option norvc` keeps every body instruction 4 bytes, `.option norelax` keeps `.` exact, and
 * `.balignw 4, 0x0001` pads to the word-aligned start with c.nop (a plain .balign pads with zero
 * halfwords there, which are illegal instructions). lp.setupi has no register operand, so it is a
 * plain .word. */
#define MCUC_XP_ASM_HWLOOP_BEGIN ".option push\n\t.option norelax\n\t.balignw 4, 0x0001\n\t.option norvc\n\t"
#if defined(__clang__)
/* Clang's integrated assembler (14) cannot evaluate the label difference at that point ("expected
 * absolute expression"): clang builds skip the body-length check, which GCC builds make. */
#define MCUC_XP_ASM_HWLOOP_END(n) ".option pop\n\t"
#else
#define MCUC_XP_ASM_HWLOOP_END(n) \
    ".if (. - 9b) != 4 * ((" #n ") + 1)\n\t.error \"hardware loop body is not " #n " instructions\"\n\t.endif\n\t" \
    ".option pop\n\t"
#endif
/* lp.setup L, rs1, uimmL: count from a register, body = the next n instructions. */
#define MCUC_XP_ASM_LP_SETUP(L, count, n) "9:\n\t.insn i 0x7b, 4, x" #L ", " count ", 2 * ((" #n ") + 1)\n\t"
/* lp.setupi L, uimmL, uimmS: constant count (< 4096), body = the next n (<= 14) instructions. */
#define MCUC_XP_ASM_LP_SETUPI(L, count, n) \
    ".if (" #count ") < 0 || (" #count ") > 4095 || (" #n ") < 1 || (" #n ") > 14\n\t" \
    ".error \"lp.setupi: count must be 0..4095 and the body 1..14 instructions\"\n\t.endif\n\t" \
    "9:\n\t.word 0x7b | (5 << 12) | (" #L " << 7) | ((" #count ") << 20) | ((2 * ((" #n ") + 1)) << 15)\n\t"
/* Long form: lp.starti / lp.endi take offsets in instructions from themselves. */
#define MCUC_XP_ASM_LP_STARTI(L, insns) ".insn i 0x7b, 0, x" #L ", x0, 2 * (" #insns ")\n\t"
#define MCUC_XP_ASM_LP_ENDI(L, insns)   ".insn i 0x7b, 1, x" #L ", x0, 2 * (" #insns ")\n\t"
#define MCUC_XP_ASM_LP_COUNT(L, rs1)    ".insn i 0x7b, 2, x" #L ", " rs1 ", 0\n\t"
#define MCUC_XP_ASM_LP_COUNTI(L, count) ".insn i 0x7b, 3, x" #L ", x0, " #count "\n\t"

/* ---- C helpers ------------------------------------------------------------------------------ */

/* acc + sum_i int8(a_i) * int8(b_i) over the four bytes of each word (pv.sdotsp.b). */
static inline int32_t mcuc_xp_sdotsp_b(int32_t acc, uint32_t a, uint32_t b)
{
#ifdef MCUC_XPULP
    __asm__(MCUC_XP_ASM_SDOTSP_B("%0", "%1", "%2") : "+r"(acc) : "r"(a), "r"(b));
    return acc;
#else
    uint32_t s = (uint32_t)acc;
    for (int i = 0; i < 32; i += 8)
        s += (uint32_t)((int32_t)(int8_t)(a >> i) * (int32_t)(int8_t)(b >> i));
    return (int32_t)s;
#endif
}

/* acc + sum_i uint8(a_i) * int8(b_i) (pv.sdotusp.b: first operand unsigned, second signed). */
static inline int32_t mcuc_xp_sdotusp_b(int32_t acc, uint32_t a, uint32_t b)
{
#ifdef MCUC_XPULP
    __asm__(MCUC_XP_ASM_SDOTUSP_B("%0", "%1", "%2") : "+r"(acc) : "r"(a), "r"(b));
    return acc;
#else
    uint32_t s = (uint32_t)acc;
    for (int i = 0; i < 32; i += 8)
        s += (uint32_t)((int32_t)(uint8_t)(a >> i) * (int32_t)(int8_t)(b >> i));
    return (int32_t)s;
#endif
}

/* sum_i int8(a_i) * int8(b_i) without accumulation (pv.dotsp.b). */
static inline int32_t mcuc_xp_dotsp_b(uint32_t a, uint32_t b)
{
#ifdef MCUC_XPULP
    int32_t r;
    __asm__(MCUC_XP_ASM_DOTSP_B("%0", "%1", "%2") : "=r"(r) : "r"(a), "r"(b));
    return r;
#else
    return mcuc_xp_sdotsp_b(0, a, b);
#endif
}

/* Lane-wise byte add modulo 256 (pv.add.b). */
static inline uint32_t mcuc_xp_add_b(uint32_t a, uint32_t b)
{
#ifdef MCUC_XPULP
    uint32_t r;
    __asm__(MCUC_XP_ASM_ADD_B("%0", "%1", "%2") : "=r"(r) : "r"(a), "r"(b));
    return r;
#else
    /* Add the low 7 bits of every lane, then fix each lane's top bit without carrying out. */
    uint32_t low = (a & 0x7f7f7f7fu) + (b & 0x7f7f7f7fu);
    return low ^ ((a ^ b) & 0x80808080u);
#endif
}

/* acc + a * b modulo 2^32 (p.mac). */
static inline int32_t mcuc_xp_mac(int32_t acc, int32_t a, int32_t b)
{
#ifdef MCUC_XPULP
    __asm__(MCUC_XP_ASM_MAC("%0", "%1", "%2") : "+r"(acc) : "r"(a), "r"(b));
    return acc;
#else
    return (int32_t)((uint32_t)acc + (uint32_t)a * (uint32_t)b);
#endif
}

static inline int32_t mcuc_xp_max(int32_t a, int32_t b)
{
#ifdef MCUC_XPULP
    int32_t r;
    __asm__(MCUC_XP_ASM_MAX("%0", "%1", "%2") : "=r"(r) : "r"(a), "r"(b));
    return r;
#else
    return a > b ? a : b;
#endif
}

static inline int32_t mcuc_xp_min(int32_t a, int32_t b)
{
#ifdef MCUC_XPULP
    int32_t r;
    __asm__(MCUC_XP_ASM_MIN("%0", "%1", "%2") : "=r"(r) : "r"(a), "r"(b));
    return r;
#else
    return a < b ? a : b;
#endif
}

static inline uint32_t mcuc_xp_maxu(uint32_t a, uint32_t b)
{
#ifdef MCUC_XPULP
    uint32_t r;
    __asm__(MCUC_XP_ASM_MAXU("%0", "%1", "%2") : "=r"(r) : "r"(a), "r"(b));
    return r;
#else
    return a > b ? a : b;
#endif
}

static inline uint32_t mcuc_xp_minu(uint32_t a, uint32_t b)
{
#ifdef MCUC_XPULP
    uint32_t r;
    __asm__(MCUC_XP_ASM_MINU("%0", "%1", "%2") : "=r"(r) : "r"(a), "r"(b));
    return r;
#else
    return a < b ? a : b;
#endif
}

/* Portable clip bounds of p.clip / p.clipu for a constant Is2 in 0..31, as [ISE "ALU"] defines
 * them: clip saturates to [-2^(Is2-1), 2^(Is2-1) - 1] (Is2 = 0 gives [-1, 0]); clipu to
 * [0, 2^(Is2-1) - 1] (Is2 = 0 gives 0). So an int8 clamp is Is2 = 8, a uint8 clamp Is2 = 9. */
static inline int32_t mcuc_xp_clip_c(int32_t x, unsigned is2)
{
    int32_t hi = is2 ? (int32_t)((1u << (is2 - 1)) - 1u) : 0;
    int32_t lo = -hi - 1;
    return x < lo ? lo : (x > hi ? hi : x);
}

static inline int32_t mcuc_xp_clipu_c(int32_t x, unsigned is2)
{
    int32_t hi = is2 ? (int32_t)((1u << (is2 - 1)) - 1u) : 0;
    return x < 0 ? 0 : (x > hi ? hi : x);
}

/* p.clip / p.clipu take Is2 as an instruction field, so they are macros over a constant. */
#ifdef MCUC_XPULP
#define MCUC_XP_CLIP(x, is2) __extension__({ int32_t r_; \
    __asm__(MCUC_XP_ASM_CLIP("%0", "%1", is2) : "=r"(r_) : "r"((int32_t)(x))); r_; })
#define MCUC_XP_CLIPU(x, is2) __extension__({ int32_t r_; \
    __asm__(MCUC_XP_ASM_CLIPU("%0", "%1", is2) : "=r"(r_) : "r"((int32_t)(x))); r_; })
#else
#define MCUC_XP_CLIP(x, is2) mcuc_xp_clip_c((int32_t)(x), (is2))
#define MCUC_XP_CLIPU(x, is2) mcuc_xp_clipu_c((int32_t)(x), (is2))
#endif

/* Little-endian reads of the portable fallbacks (RV32 is little-endian; byte reads need no
 * alignment and no aliasing exemption). */
static inline uint32_t mcuc_xp_ld32_c(const void *p)
{
    const uint8_t *b = (const uint8_t *)p;
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

/* Post-increment loads and stores on a pointer lvalue `p` of any pointer type: load from p (or
 * store v to p), then p += inc bytes. _PI takes a constant inc (12-bit signed instruction field),
 * _PR an int32_t register. The "m" operands tell GCC which memory the instruction touches. */
#ifdef MCUC_XPULP
#define MCUC_XP_LW_PI(p, inc) __extension__({ int32_t v_; \
    __asm__(MCUC_XP_ASM_LW_PI("%0", "%1", inc) : "=&r"(v_), "+r"(p) : "m"(*(const int32_t *)(p))); v_; })
#define MCUC_XP_LB_PI(p, inc) __extension__({ int32_t v_; \
    __asm__(MCUC_XP_ASM_LB_PI("%0", "%1", inc) : "=&r"(v_), "+r"(p) : "m"(*(const int8_t *)(p))); v_; })
#define MCUC_XP_LBU_PI(p, inc) __extension__({ int32_t v_; \
    __asm__(MCUC_XP_ASM_LBU_PI("%0", "%1", inc) : "=&r"(v_), "+r"(p) : "m"(*(const uint8_t *)(p))); v_; })
#define MCUC_XP_LW_PR(p, inc) __extension__({ int32_t v_; \
    __asm__(MCUC_XP_ASM_LW_PR("%0", "%1", "%2") : "=&r"(v_), "+r"(p) : "r"((int32_t)(inc)), "m"(*(const int32_t *)(p))); v_; })
#define MCUC_XP_LB_PR(p, inc) __extension__({ int32_t v_; \
    __asm__(MCUC_XP_ASM_LB_PR("%0", "%1", "%2") : "=&r"(v_), "+r"(p) : "r"((int32_t)(inc)), "m"(*(const int8_t *)(p))); v_; })
#define MCUC_XP_LBU_PR(p, inc) __extension__({ int32_t v_; \
    __asm__(MCUC_XP_ASM_LBU_PR("%0", "%1", "%2") : "=&r"(v_), "+r"(p) : "r"((int32_t)(inc)), "m"(*(const uint8_t *)(p))); v_; })
#define MCUC_XP_SW_PI(p, v, inc) \
    __asm__(MCUC_XP_ASM_SW_PI("%2", "%0", inc) : "+r"(p), "=m"(*(int32_t *)(p)) : "r"((int32_t)(v)))
#define MCUC_XP_SB_PI(p, v, inc) \
    __asm__(MCUC_XP_ASM_SB_PI("%2", "%0", inc) : "+r"(p), "=m"(*(int8_t *)(p)) : "r"((int32_t)(v)))
#else
#define MCUC_XP_PI_C_(p, inc, expr) __extension__({ const uint8_t *q_ = (const uint8_t *)(p); \
    int32_t v_ = (int32_t)(expr); (p) = (__typeof__(p))(q_ + (int32_t)(inc)); v_; })
#define MCUC_XP_LW_PI(p, inc) MCUC_XP_PI_C_(p, inc, mcuc_xp_ld32_c(q_))
#define MCUC_XP_LB_PI(p, inc) MCUC_XP_PI_C_(p, inc, (int8_t)q_[0])
#define MCUC_XP_LBU_PI(p, inc) MCUC_XP_PI_C_(p, inc, q_[0])
#define MCUC_XP_LW_PR(p, inc) MCUC_XP_LW_PI(p, inc)
#define MCUC_XP_LB_PR(p, inc) MCUC_XP_LB_PI(p, inc)
#define MCUC_XP_LBU_PR(p, inc) MCUC_XP_LBU_PI(p, inc)
#define MCUC_XP_SW_PI(p, v, inc) do { uint8_t *q_ = (uint8_t *)(p); uint32_t w_ = (uint32_t)(v); \
    q_[0] = (uint8_t)w_; q_[1] = (uint8_t)(w_ >> 8); q_[2] = (uint8_t)(w_ >> 16); \
    q_[3] = (uint8_t)(w_ >> 24); (p) = (__typeof__(p))(q_ + (int32_t)(inc)); } while (0)
#define MCUC_XP_SB_PI(p, v, inc) do { uint8_t *q_ = (uint8_t *)(p); q_[0] = (uint8_t)(v); \
    (p) = (__typeof__(p))(q_ + (int32_t)(inc)); } while (0)
#endif

/* acc + sum over n words of pv.sdotsp.b(a[i], b[i]): the inner loop of an int8 kernel, as one
 * hardware loop (lp.setup, two post-increment word loads, one 4-way dot product). The body and the
 * setup are one asm block so GCC cannot move anything into or out of the loop body. n >= 1. */
static inline int32_t mcuc_xp_dot_s8x4(int32_t acc, const int8_t *a, const int8_t *b, uint32_t n)
{
#ifdef MCUC_XPULP
    uint32_t wa, wb;
    __asm__ volatile(
        MCUC_XP_ASM_HWLOOP_BEGIN
        MCUC_XP_ASM_LP_SETUP(0, "%[n]", 3)
        MCUC_XP_ASM_LW_PI("%[wa]", "%[a]", 4)
        MCUC_XP_ASM_LW_PI("%[wb]", "%[b]", 4)
        MCUC_XP_ASM_SDOTSP_B("%[acc]", "%[wa]", "%[wb]")
        MCUC_XP_ASM_HWLOOP_END(3)
        : [acc] "+r"(acc), [a] "+r"(a), [b] "+r"(b), [wa] "=&r"(wa), [wb] "=&r"(wb)
        : [n] "r"(n)
        : "memory");
    return acc;
#else
    for (uint32_t i = 0; i < n; i++)
        acc = mcuc_xp_sdotsp_b(acc, mcuc_xp_ld32_c(a + 4 * i), mcuc_xp_ld32_c(b + 4 * i));
    return acc;
#endif
}

#endif /* MCUC_XPULP_H */
