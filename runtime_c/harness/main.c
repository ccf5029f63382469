/*
 * mcuc test harness: runs the generated model on N samples streamed through the port layer
 * (protocol in mcuc_port.h) and reports one machine-readable line at the end:
 *
 *   MCUC_RESULT status=PASS samples=N cycles=<total> cycles_per_sample=<avg> fnv1a=<hash>
 *
 * fnv1a is the 32-bit FNV-1a hash of all output bytes, so firmware without a fast output
 * channel can still be checked. Built with MCUC_PROFILE, the model counts cycles per layer and
 * the harness prints one "MCUC_LAYER" line for each before the result.
 *
 * No malloc and no printf: buffers are static and sized by mcuc_model_io.h (generated).
 */
#include <stddef.h>
#include <stdint.h>

#include "mcuc_model_io.h"
#include "mcuc_port.h"

/* int32 storage keeps every input and output 4-byte aligned. */
static int32_t mcuc_in_buf[(MCUC_IN_BUF_BYTES + 3) / 4];
static int32_t mcuc_out_buf[(MCUC_OUT_BUF_BYTES + 3) / 4];

static char *mcuc_put_str(char *p, const char *s)
{
    while (*s) {
        *p++ = *s++;
    }
    return p;
}

static char *mcuc_put_u64(char *p, uint64_t v)
{
    char tmp[21];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + (int)(v % 10u));
        v /= 10u;
    } while (v);
    while (n) {
        *p++ = tmp[--n];
    }
    return p;
}

static void mcuc_result(const char *status, uint32_t samples, uint64_t cycles, uint32_t hash, const char *why)
{
    char line[200];
    char *p = mcuc_put_str(line, "MCUC_RESULT status=");
    p = mcuc_put_str(p, status);
    p = mcuc_put_str(p, " samples=");
    p = mcuc_put_u64(p, samples);
    p = mcuc_put_str(p, " cycles=");
    p = mcuc_put_u64(p, cycles);
    p = mcuc_put_str(p, " cycles_per_sample=");
    p = mcuc_put_u64(p, samples ? cycles / samples : 0u);
    p = mcuc_put_str(p, " fnv1a=");
    p = mcuc_put_u64(p, hash);
    if (why) {
        p = mcuc_put_str(p, " reason=");
        p = mcuc_put_str(p, why);
    }
    *p = '\0';
    mcuc_port_print(line);
}

static uint32_t mcuc_fnv1a(uint32_t h, const uint8_t *data, size_t n)
{
    size_t i;
    for (i = 0; i < n; ++i) {
        h = (h ^ data[i]) * 16777619u;
    }
    return h;
}

int main(int argc, char **argv)
{
    uint8_t hdr[4];
    uint32_t n, s, k;
    uint64_t total = 0;
    uint32_t hash = 2166136261u;
    uint8_t *const in = (uint8_t *)mcuc_in_buf;
    uint8_t *const out = (uint8_t *)mcuc_out_buf;

    if (mcuc_port_init(argc, argv) != 0) {
        mcuc_result("FAIL", 0, 0, hash, "port_init");
        mcuc_port_done(1);
        return 1;
    }
    if (mcuc_port_read(hdr, 4) != 4) {
        mcuc_result("FAIL", 0, 0, hash, "no_sample_count");
        mcuc_port_done(1);
        return 1;
    }
    n = (uint32_t)hdr[0] | ((uint32_t)hdr[1] << 8) | ((uint32_t)hdr[2] << 16) | ((uint32_t)hdr[3] << 24);
    for (s = 0; s < n; ++s) {
        uint32_t t0;
        int rc;
#if MCUC_N_INPUTS > 0
        for (k = 0; k < MCUC_N_INPUTS; ++k) {
            if (mcuc_port_read(in + mcuc_in_off[k], mcuc_in_bytes[k]) != mcuc_in_bytes[k]) {
                mcuc_result("FAIL", s, total, hash, "short_input");
                mcuc_port_done(1);
                return 1;
            }
        }
#endif
        t0 = mcuc_port_cycles();
        rc = mcuc_model_invoke(in, out);
        total += (uint32_t)(mcuc_port_cycles() - t0);
        if (rc != 0) {
            mcuc_result("FAIL", s, total, hash, "model_error");
            mcuc_port_done(1);
            return 1;
        }
        for (k = 0; k < MCUC_N_OUTPUTS; ++k) {
            hash = mcuc_fnv1a(hash, out + mcuc_out_off[k], mcuc_out_bytes[k]);
            if (mcuc_port_write(out + mcuc_out_off[k], mcuc_out_bytes[k]) != 0) {
                mcuc_result("FAIL", s, total, hash, "write_error");
                mcuc_port_done(1);
                return 1;
            }
        }
    }
#if defined(MCUC_PROFILE) && MCUC_N_LAYERS > 0
    for (k = 0; k < MCUC_N_LAYERS; ++k) {
        char line[160];
        char *p = mcuc_put_str(line, "MCUC_LAYER index=");
        p = mcuc_put_u64(p, k);
        p = mcuc_put_str(p, " name=");
        p = mcuc_put_str(p, mcuc_layer_names[k]);
        p = mcuc_put_str(p, " cycles=");
        p = mcuc_put_u64(p, MCUC_LAYER_CYCLES[k]);
        *p = '\0';
        mcuc_port_print(line);
    }
#endif
    mcuc_result("PASS", n, total, hash, 0);
    mcuc_port_done(0);
    return 0;
}
