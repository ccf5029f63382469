/*
 * Port layer of the riscv family (RV32 firmware): the shared blob-and-console port
 * (mcuc_port_blob.h) on RISC-V's hooks. Cycles are the mcycle CSR; the simulators record their
 * own counts at each entry of mcuc_port_cycles, which is where per-layer figures come from.
 */
#include <stdint.h>

static void mcuc_arch_cycles_start(void)
{
}

static uint32_t mcuc_arch_cycles(void)
{
    uint32_t c;
    __asm__ volatile("csrr %0, mcycle" : "=r"(c));
    return c;
}

/* The RISC-V semihosting trap is exactly slli x0,x0,0x1f; ebreak; srai x0,x0,7, all uncompressed
 * and in one page (RISC-V semihosting spec, "Semihosting trap"). */
static void mcuc_arch_semihost_exit(uint32_t reason_code)
{
    register uint32_t op __asm__("a0") = 0x18u;
    register uint32_t reason __asm__("a1") = reason_code;
    __asm__ volatile(".option push\n\t"
                     ".option norvc\n\t"
                     ".balign 16\n\t"
                     "slli x0, x0, 0x1f\n\t"
                     "ebreak\n\t"
                     "srai x0, x0, 7\n\t"
                     ".option pop"
                     : "+r"(op)
                     : "r"(reason)
                     : "memory");
}

static void mcuc_arch_idle(void)
{
    __asm__ volatile("wfi");
}

#include "mcuc_port_blob.h"
