/*
 * Port layer of the cortex-m family (firmware): the shared blob-and-console port
 * (mcuc_port_blob.h) on Arm's hooks. Cycles are DWT CYCCNT; a simulator answers those reads
 * with its timing model's count. Semihosting is BKPT 0xAB.
 */
#include <stdint.h>

#include "mcuc_board.h"

#define DEMCR 0xE000EDFCu
#define DEMCR_TRCENA (1u << 24)
#define DWT_CTRL 0xE0001000u
#define DWT_CYCCNT 0xE0001004u
#define DWT_CTRL_CYCCNTENA 1u

static void mcuc_arch_cycles_start(void)
{
    MCUC_REG(DEMCR) |= DEMCR_TRCENA;
    MCUC_REG(DWT_CYCCNT) = 0u;
    MCUC_REG(DWT_CTRL) |= DWT_CTRL_CYCCNTENA;
}

static uint32_t mcuc_arch_cycles(void)
{
    return MCUC_REG(DWT_CYCCNT);
}

static void mcuc_arch_semihost_exit(uint32_t reason_code)
{
    register uint32_t op __asm__("r0") = 0x18u;
    register uint32_t reason __asm__("r1") = reason_code;
    __asm__ volatile("bkpt 0xab" : : "r"(op), "r"(reason) : "memory");
}

static void mcuc_arch_idle(void)
{
    __asm__ volatile("wfi");
}

#include "mcuc_port_blob.h"
