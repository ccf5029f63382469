/*
 * mcuc_count -- a QEMU TCG plugin that counts executed guest instructions and Cortex-M4 cycles
 * (estimated from the timing model in compiler/sim/cortex_m4.yaml) and records both counts each
 * time a marker address is entered (the firmware's mcuc_port_cycles).
 *
 * QEMU 7.2 ships no qemu-plugin.h, so the few declarations of the version-1 plugin API this
 * file uses are written out below; the API may change in later QEMU versions.
 *
 * Arguments (-plugin mcuc_count.so,table=F,marker=A,out=F):
 *   table   per-halfword cost table written by compiler/sim/cycles.py: uint32 base address,
 *           uint32 halfword count, then one byte per halfword: bits 0-5 cycles of the
 *           instruction starting there, bit 6 "an instruction starts here", bit 7 "conditional
 *           branch" (+refill when taken). An instruction outside the table costs 1 cycle.
 *   refill  pipeline refill cycles P added after a taken conditional branch.
 *   marker  address (decimal or 0x hex) of the function whose entries are recorded.
 *   out     file receiving "total <instructions> <cycles>" and one "mark <i> <c>" per entry.
 */
#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_CB_R_REGS, QEMU_PLUGIN_CB_RW_REGS };
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*qemu_plugin_vcpu_udata_cb_t)(unsigned int vcpu_index, void *userdata);
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);

void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb *tb, qemu_plugin_vcpu_udata_cb_t cb,
                                          enum qemu_plugin_cb_flags flags, void *userdata);
void qemu_plugin_register_vcpu_insn_exec_cb(struct qemu_plugin_insn *insn, qemu_plugin_vcpu_udata_cb_t cb,
                                            enum qemu_plugin_cb_flags flags, void *userdata);
void qemu_plugin_register_vcpu_insn_exec_inline(struct qemu_plugin_insn *insn, enum qemu_plugin_op op, void *ptr,
                                                uint64_t imm);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb, void *userdata);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb *tb);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
uint64_t qemu_plugin_insn_vaddr(const struct qemu_plugin_insn *insn);
size_t qemu_plugin_insn_size(const struct qemu_plugin_insn *insn);

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

static uint8_t *table;
static uint64_t table_base, table_n;
static uint64_t refill = 2;
static uint64_t marker_addr = UINT64_MAX;
static char out_path[4096];

/* Instructions and cycles are counted by inline additions per instruction, not per block:
 * with -icount an MMIO access inside a block aborts it, and QEMU re-runs the block's start
 * without instrumentation, so per-instruction counts stay exact where per-block ones would
 * count the aborted block whole. */
static uint64_t n_insns, n_cycles;
static uint64_t pending_fallthrough; /* set by a conditional branch about to execute */
static uint64_t *marks;
static size_t n_marks, cap_marks;

static uint8_t cost_at(uint64_t addr)
{
    uint64_t i = (addr - table_base) / 2;
    if (addr < table_base || i >= table_n) {
        return 0x40 | 1;
    }
    return table[i];
}

static void on_cond_branch(unsigned int vcpu, void *ud)
{
    (void)vcpu;
    pending_fallthrough = (uint64_t)(uintptr_t)ud;
}

static void on_block(unsigned int vcpu, void *ud)
{
    uint64_t start = (uint64_t)(uintptr_t)ud;
    (void)vcpu;
    if (pending_fallthrough && start != pending_fallthrough) {
        n_cycles += refill;
    }
    pending_fallthrough = 0;
    if (start == marker_addr) {
        if (n_marks + 2 > cap_marks) {
            cap_marks = cap_marks ? 2 * cap_marks : 4096;
            marks = realloc(marks, cap_marks * sizeof *marks);
            if (!marks) {
                abort();
            }
        }
        marks[n_marks++] = n_insns;
        marks[n_marks++] = n_cycles;
    }
}

static void on_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    size_t n = qemu_plugin_tb_n_insns(tb), i;
    (void)id;
    qemu_plugin_register_vcpu_tb_exec_cb(tb, on_block, QEMU_PLUGIN_CB_NO_REGS,
                                         (void *)(uintptr_t)qemu_plugin_tb_vaddr(tb));
    for (i = 0; i < n; ++i) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        uint64_t a = qemu_plugin_insn_vaddr(insn);
        uint8_t c = cost_at(a);
        qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, &n_insns, 1);
        if (c & 0x3F) {
            qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, &n_cycles, c & 0x3F);
        }
        if (c & 0x80) {
            qemu_plugin_register_vcpu_insn_exec_cb(insn, on_cond_branch, QEMU_PLUGIN_CB_NO_REGS,
                                                   (void *)(uintptr_t)(a + qemu_plugin_insn_size(insn)));
        }
    }
}

static void on_atexit(qemu_plugin_id_t id, void *ud)
{
    FILE *f = out_path[0] ? fopen(out_path, "w") : stderr;
    size_t i;
    (void)id;
    (void)ud;
    if (!f) {
        return;
    }
    fprintf(f, "total %" PRIu64 " %" PRIu64 "\n", n_insns, n_cycles);
    for (i = 0; i + 1 < n_marks; i += 2) {
        fprintf(f, "mark %" PRIu64 " %" PRIu64 "\n", marks[i], marks[i + 1]);
    }
    if (f != stderr) {
        fclose(f);
    }
}

static int load_table(const char *path)
{
    FILE *f = fopen(path, "rb");
    uint32_t hdr[2];
    if (!f) {
        return -1;
    }
    if (fread(hdr, 4, 2, f) != 2) {
        fclose(f);
        return -1;
    }
    table_base = hdr[0];
    table_n = hdr[1];
    table = malloc(table_n ? table_n : 1);
    if (!table || fread(table, 1, table_n, f) != table_n) {
        fclose(f);
        return -1;
    }
    fclose(f);
    return 0;
}

__attribute__((visibility("default"))) int qemu_plugin_install(qemu_plugin_id_t id, const void *info, int argc,
                                                               char **argv)
{
    int i;
    (void)info;
    for (i = 0; i < argc; ++i) {
        const char *a = argv[i];
        if (strncmp(a, "table=", 6) == 0) {
            if (load_table(a + 6) != 0) {
                fprintf(stderr, "mcuc_count: cannot read table %s\n", a + 6);
                return -1;
            }
        } else if (strncmp(a, "marker=", 7) == 0) {
            marker_addr = strtoull(a + 7, NULL, 0);
        } else if (strncmp(a, "refill=", 7) == 0) {
            refill = strtoull(a + 7, NULL, 0);
        } else if (strncmp(a, "out=", 4) == 0) {
            snprintf(out_path, sizeof out_path, "%s", a + 4);
        } else {
            fprintf(stderr, "mcuc_count: unknown argument %s\n", a);
            return -1;
        }
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_trans);
    qemu_plugin_register_atexit_cb(id, on_atexit, NULL);
    return 0;
}
