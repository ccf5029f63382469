/*
 * Port layer of the generic family (the host): `prog [INPUT [OUTPUT]]` streams samples from INPUT (default stdin)
 * to OUTPUT (default stdout); text lines go to stdout when OUTPUT is a file, else to stderr so
 * that they never mix with the binary output. Cycles are nanoseconds of CLOCK_MONOTONIC.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "mcuc_port.h"

static FILE *mcuc_in;
static FILE *mcuc_out;
static FILE *mcuc_text;

static FILE *mcuc_open(const char *path, const char *mode, FILE *dflt)
{
    if (path == NULL || strcmp(path, "-") == 0) {
        return dflt;
    }
    return fopen(path, mode);
}

int mcuc_port_init(int argc, char **argv)
{
    mcuc_in = mcuc_open(argc > 1 ? argv[1] : NULL, "rb", stdin);
    mcuc_out = mcuc_open(argc > 2 ? argv[2] : NULL, "wb", stdout);
    mcuc_text = (mcuc_out == stdout) ? stderr : stdout;
    return (mcuc_in == NULL || mcuc_out == NULL) ? 1 : 0;
}

size_t mcuc_port_read(void *dst, size_t n)
{
    return mcuc_in ? fread(dst, 1, n, mcuc_in) : 0u;
}

int mcuc_port_write(const void *src, size_t n)
{
    return (mcuc_out && fwrite(src, 1, n, mcuc_out) == n) ? 0 : 1;
}

uint32_t mcuc_port_cycles(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint32_t)((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec);
}

void mcuc_port_print(const char *line)
{
    FILE *f = mcuc_text ? mcuc_text : stderr;
    fputs(line, f);
    fputc('\n', f);
    fflush(f);
}

void mcuc_port_done(int status)
{
    (void)status;
    if (mcuc_out) {
        fflush(mcuc_out);
    }
    if (mcuc_in && mcuc_in != stdin) {
        fclose(mcuc_in);
    }
    if (mcuc_out && mcuc_out != stdout) {
        fclose(mcuc_out);
    }
}
