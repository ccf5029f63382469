/*
 * The firmware port layer's shared part (mcuc_port.h's API over the input blob and a console),
 * included once by a firmware family's mcuc_port.c after it defines the core-specific hooks:
 *
 *   static void mcuc_arch_cycles_start(void);      start the core's cycle counter
 *   static uint32_t mcuc_arch_cycles(void);        read it
 *   static void mcuc_arch_semihost_exit(uint32_t reason);  semihosting SYS_EXIT (0x18)
 *   static void mcuc_arch_idle(void);              wait for an interrupt, forever after exit
 *
 * Inputs come from the input blob, a region of the image the linker script names
 * mcuc_input_blob: a simulator writes it before reset (a real board gets it programmed), so all
 * samples run in one boot without a fast input channel.
 *
 *   blob:   uint32 magic 0x4955434D ("MCUI"), uint32 flags, uint32 stream bytes, uint32 0,
 *           then the harness's input stream (mcuc_port.h).
 *   flags:  bit 0 -- exit through semihosting SYS_EXIT (only with a debugger or simulator
 *           attached; without one the semihosting trap would stop a real core).
 *
 * The console says "MCUC_BOOT board=<board>" first; outputs follow as "MCUC_OUT <hex bytes>"
 * lines in stream order.
 */
#ifndef MCUC_PORT_BLOB_H
#define MCUC_PORT_BLOB_H

#include <string.h>

#include "mcuc_board.h"
#include "mcuc_port.h"

#define MCUC_BLOB_MAGIC 0x4955434Du
#define MCUC_FLAG_SEMIHOST_EXIT 1u
#define MCUC_OUT_PER_LINE 32u

extern const uint8_t mcuc_input_blob[];
extern const uint8_t mcuc_input_blob_end[];

static const uint8_t *mcuc_rd;
static const uint8_t *mcuc_rd_end;
static uint32_t mcuc_flags;

static uint32_t mcuc_load32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

int mcuc_port_init(int argc, char **argv)
{
    uint32_t avail = (uint32_t)(mcuc_input_blob_end - mcuc_input_blob);
    uint32_t n;
    (void)argc;
    (void)argv;
    mcuc_console_init();
    /* A first line, so that a firmware that hangs or crashes before any result still shows
     * how far it got. */
    mcuc_port_print("MCUC_BOOT board=" MCUC_BOARD_NAME);
    mcuc_arch_cycles_start();
    if (avail < 16u || mcuc_load32(mcuc_input_blob) != MCUC_BLOB_MAGIC) {
        return 1;
    }
    mcuc_flags = mcuc_load32(mcuc_input_blob + 4);
    n = mcuc_load32(mcuc_input_blob + 8);
    if (n > avail - 16u) {
        return 1;
    }
    mcuc_rd = mcuc_input_blob + 16;
    mcuc_rd_end = mcuc_rd + n;
    return 0;
}

size_t mcuc_port_read(void *dst, size_t n)
{
    size_t left = mcuc_rd ? (size_t)(mcuc_rd_end - mcuc_rd) : 0u;
    if (n > left) {
        n = left;
    }
    memcpy(dst, mcuc_rd, n);
    mcuc_rd += n;
    return n;
}

static void mcuc_puts(const char *s)
{
    while (*s) {
        mcuc_console_putc(*s++);
    }
}

int mcuc_port_write(const void *src, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const uint8_t *p = (const uint8_t *)src;
    size_t i;
    for (i = 0; i < n; ++i) {
        if (i % MCUC_OUT_PER_LINE == 0u) {
            mcuc_puts(i ? "\nMCUC_OUT " : "MCUC_OUT ");
        }
        mcuc_console_putc(hex[p[i] >> 4]);
        mcuc_console_putc(hex[p[i] & 15u]);
    }
    if (n) {
        mcuc_console_putc('\n');
    }
    return 0;
}

/* Not inlined: simulators find this function by its symbol and record their instruction and
 * cycle counts each time it is entered, which is how per-layer figures reach them. */
__attribute__((noinline)) uint32_t mcuc_port_cycles(void)
{
    return mcuc_arch_cycles();
}

void mcuc_port_print(const char *line)
{
    mcuc_puts(line);
    mcuc_console_putc('\n');
}

void mcuc_port_done(int status)
{
    mcuc_exit(status);
}

void mcuc_exit(int status)
{
    if (mcuc_flags & MCUC_FLAG_SEMIHOST_EXIT) {
        /* SYS_EXIT (0x18) with ADP_Stopped_ApplicationExit, or RunTimeErrorUnknown on failure. */
        mcuc_arch_semihost_exit(status == 0 ? 0x20026u : 0x20023u);
    }
    for (;;) {
        mcuc_arch_idle();
    }
}

/* Every unexpected exception or trap: say so on the console, then stop with a failure. */
void mcuc_fault_handler(void)
{
    mcuc_port_print("MCUC_RESULT status=FAIL samples=0 cycles=0 cycles_per_sample=0 fnv1a=0 reason=fault");
    mcuc_exit(3);
}

#endif /* MCUC_PORT_BLOB_H */
