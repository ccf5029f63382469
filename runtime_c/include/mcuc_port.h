/*
 * mcuc_port.h -- what the test harness (runtime_c/harness/main.c) needs from a platform.
 *
 * Each board family implements these once: the host reads and writes files or stdio, firmware
 * a UART or semihosting. The harness protocol on the byte stream:
 *
 *   input:  uint32 little-endian sample count N, then N samples, each the model's inputs in
 *           order, every input as its raw little-endian elements (no padding);
 *   output: N samples of the model's outputs, the same way;
 *   lines:  human- and machine-readable text through mcuc_port_print, ending with
 *           "MCUC_RESULT status=PASS|FAIL samples=N ...".
 */
#ifndef MCUC_PORT_H
#define MCUC_PORT_H

#include <stddef.h>
#include <stdint.h>

/* Prepare the byte streams; non-zero on failure. argc/argv are 0/NULL on firmware. */
int mcuc_port_init(int argc, char **argv);

/* Read exactly n bytes of input; returns the number of bytes read (less than n at the end). */
size_t mcuc_port_read(void *dst, size_t n);

/* Write n bytes of output; non-zero on failure. */
int mcuc_port_write(const void *src, size_t n);

/* A free-running cycle (or time) counter; differences are taken modulo 2^32. */
uint32_t mcuc_port_cycles(void);

/* Print one line of text (no newline in `line`). */
void mcuc_port_print(const char *line);

/* Flush and release the streams; `status` is the harness's exit status. */
void mcuc_port_done(int status);

#endif /* MCUC_PORT_H */
