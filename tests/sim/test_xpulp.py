"""The Xpulp subset end to end: runtime_c/include/mcuc_xpulp.h, compiled with Debian's
riscv64-unknown-elf-gcc for plain RV32IMC (-march=rv32imc), checked word by word against the
decoder in compiler/sim/xpulp.py, then run in Unicorn with the illegal-instruction trap emulation
on random operands and compared with the Python semantic model and with the header's portable C
fallback (the same test source built without MCUC_XPULP, also run in Unicorn)."""

from __future__ import annotations

import random
import shutil
import subprocess
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from compiler.sim import xpulp
from compiler.sim.xpulp import DictMachine, Insn, LoopState, decode, execute

REPO = Path(__file__).resolve().parents[2]
GCC, LD = "riscv64-unknown-elf-gcc", "riscv64-unknown-elf-ld"
CFLAGS = ["--specs=picolibc.specs", "-march=rv32imc", "-misa-spec=2.2", "-mabi=ilp32", "-O2",
          "-Wall", "-Wextra", "-Werror", f"-I{REPO / 'runtime_c' / 'include'}"]
TEXT, DATA, STACK_TOP, RET = 0x10000, 0x40000, 0x80000, 0x0F000
M32 = 0xFFFFFFFF

# One noinline function per helper; arguments arrive in a0..a3, results leave in a0.
SOURCE = r"""
#include "mcuc_xpulp.h"
#define NI __attribute__((noinline, used))
NI int32_t t_sdotsp(int32_t acc, uint32_t a, uint32_t b) { return mcuc_xp_sdotsp_b(acc, a, b); }
NI int32_t t_sdotusp(int32_t acc, uint32_t a, uint32_t b) { return mcuc_xp_sdotusp_b(acc, a, b); }
NI int32_t t_dotsp(uint32_t a, uint32_t b) { return mcuc_xp_dotsp_b(a, b); }
NI uint32_t t_add_b(uint32_t a, uint32_t b) { return mcuc_xp_add_b(a, b); }
NI int32_t t_mac(int32_t acc, int32_t a, int32_t b) { return mcuc_xp_mac(acc, a, b); }
NI int32_t t_max(int32_t a, int32_t b) { return mcuc_xp_max(a, b); }
NI int32_t t_min(int32_t a, int32_t b) { return mcuc_xp_min(a, b); }
NI uint32_t t_maxu(uint32_t a, uint32_t b) { return mcuc_xp_maxu(a, b); }
NI uint32_t t_minu(uint32_t a, uint32_t b) { return mcuc_xp_minu(a, b); }
NI int32_t t_clip8(int32_t x) { return MCUC_XP_CLIP(x, 8); }
NI int32_t t_clip1(int32_t x) { return MCUC_XP_CLIP(x, 1); }
NI int32_t t_clip0(int32_t x) { return MCUC_XP_CLIP(x, 0); }
NI int32_t t_clip31(int32_t x) { return MCUC_XP_CLIP(x, 31); }
NI int32_t t_clipu9(int32_t x) { return MCUC_XP_CLIPU(x, 9); }
NI int32_t t_clipu16(int32_t x) { return MCUC_XP_CLIPU(x, 16); }
NI int32_t t_lw_pi(const int8_t **pp) { const int8_t *p = *pp; int32_t v = MCUC_XP_LW_PI(p, 8); *pp = p; return v; }
NI int32_t t_lb_pi(const int8_t **pp) { const int8_t *p = *pp; int32_t v = MCUC_XP_LB_PI(p, -3); *pp = p; return v; }
NI int32_t t_lbu_pi(const uint8_t **pp) { const uint8_t *p = *pp; int32_t v = MCUC_XP_LBU_PI(p, 5); *pp = p; return v; }
NI int32_t t_lw_pr(const int32_t **pp, int32_t inc) { const int32_t *p = *pp; int32_t v = MCUC_XP_LW_PR(p, inc); *pp = p; return v; }
NI int32_t t_lb_pr(const int8_t **pp, int32_t inc) { const int8_t *p = *pp; int32_t v = MCUC_XP_LB_PR(p, inc); *pp = p; return v; }
NI int32_t t_lbu_pr(const uint8_t **pp, int32_t inc) { const uint8_t *p = *pp; int32_t v = MCUC_XP_LBU_PR(p, inc); *pp = p; return v; }
NI void t_sw_pi(int32_t **pp, int32_t v) { int32_t *p = *pp; MCUC_XP_SW_PI(p, v, 12); *pp = p; }
NI void t_sb_pi(int8_t **pp, int32_t v) { int8_t *p = *pp; MCUC_XP_SB_PI(p, v, -1); *pp = p; }
NI int32_t t_dot(int32_t acc, const int8_t *a, const int8_t *b, uint32_t n) { return mcuc_xp_dot_s8x4(acc, a, b, n); }

/* sum of w + w * w over 5 words: a constant-count loop (lp.setupi). */
NI int32_t t_setupi(const int32_t *p)
{
    int32_t acc = 0;
#ifdef MCUC_XPULP
    int32_t w;
    __asm__ volatile(
        MCUC_XP_ASM_HWLOOP_BEGIN
        MCUC_XP_ASM_LP_SETUPI(0, 5, 3)
        MCUC_XP_ASM_LW_PI("%[w]", "%[p]", 4)
        MCUC_XP_ASM_MAC("%[acc]", "%[w]", "%[w]")
        "add %[acc], %[acc], %[w]\n\t"        /* a plain RV32I instruction ends the body */
        MCUC_XP_ASM_HWLOOP_END(3)
        : [acc] "+r"(acc), [p] "+r"(p), [w] "=&r"(w) : : "memory");
#else
    for (int i = 0; i < 5; i++)
        acc = mcuc_xp_mac(acc + p[i], p[i], p[i]);
#endif
    return acc;
}

/* out[j] = dot of the next n_in words of a and b, for j < n_out: loop 1 in the long form
 * (lp.count, lp.starti, lp.endi) around loop 0 (lp.setup). */
NI void t_nested(const int8_t *a, const int8_t *b, int32_t *out, uint32_t n_out, uint32_t n_in)
{
#ifdef MCUC_XPULP
    int32_t acc;
    uint32_t wa, wb;
    __asm__ volatile(
        MCUC_XP_ASM_HWLOOP_BEGIN
        MCUC_XP_ASM_LP_COUNT(1, "%[no]")
        MCUC_XP_ASM_LP_STARTI(1, 2)              /* the instruction after lp.endi */
        MCUC_XP_ASM_LP_ENDI(1, 7)                /* lp.endi + 1 + 6 outer-body instructions */
        "li %[acc], 0\n\t"
        MCUC_XP_ASM_LP_SETUP(0, "%[ni]", 3)
        MCUC_XP_ASM_LW_PI("%[wa]", "%[a]", 4)
        MCUC_XP_ASM_LW_PI("%[wb]", "%[b]", 4)
        MCUC_XP_ASM_SDOTSP_B("%[acc]", "%[wa]", "%[wb]")
        MCUC_XP_ASM_HWLOOP_END(3)
        ".option push\n\t.option norvc\n\t"
        MCUC_XP_ASM_SW_PI("%[acc]", "%[out]", 4)
        ".option pop\n\t"
        : [acc] "=&r"(acc), [a] "+r"(a), [b] "+r"(b), [out] "+r"(out), [wa] "=&r"(wa), [wb] "=&r"(wb)
        : [no] "r"(n_out), [ni] "r"(n_in)
        : "memory");
#else
    for (uint32_t j = 0; j < n_out; j++, a += 4 * n_in, b += 4 * n_in)
        out[j] = mcuc_xp_dot_s8x4(0, a, b, n_in);
#endif
}
"""


def _need_gcc() -> None:
    if shutil.which(GCC) is None:
        pytest.skip(f"{GCC} is not installed (make setup installs it as root)")


def _run(cmd: list[str]) -> None:
    r = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert r.returncode == 0, f"{' '.join(cmd)}\n{r.stderr}"


@pytest.fixture(scope="module", params=["-O2", "-O0", "-Os"])
def builds(request, tmp_path_factory):
    """{"xpulp": Program, "c": Program, "opt": level}: the test source built with and without
    MCUC_XPULP. -O0 and -Os check that the asm constraints hold whatever the register allocation."""
    _need_gcc()
    d = tmp_path_factory.mktemp("xpulp")
    src = d / "t.c"
    src.write_text(SOURCE)
    out = {}
    for name, defs in (("xpulp", ["-DMCUC_XPULP"]), ("c", [])):
        obj, elf = d / f"{name}.o", d / f"{name}.elf"
        _run([GCC, *[f for f in CFLAGS if f != "-O2"], request.param, *defs, "-c", "-o", str(obj), str(src)])
        # Plain ld at a fixed address: picolibc's linker script would add a runtime the test needs not.
        _run([LD, "-m", "elf32lriscv", f"-Ttext={TEXT:#x}", "-e", "0", "-o", str(elf), str(obj)])
        out[name] = Program(elf)
    return out


class Program:
    """An ELF loaded once into a Unicorn RV32 CPU; ``call`` runs one function to its return."""

    def __init__(self, elf: Path, sweep: bool = True):
        from elftools.elf.elffile import ELFFile
        from unicorn import UC_ARCH_RISCV, UC_MODE_RISCV32, Uc

        with open(elf, "rb") as f:
            e = ELFFile(f)
            text = e.get_section_by_name(".text")
            self.base, self.code = text["sh_addr"], text.data()
            self.funcs = {s.name: (s["st_value"], s["st_size"]) for s in e.get_section_by_name(".symtab").iter_symbols()
                          if s["st_info"]["type"] == "STT_FUNC"}
        self.uc = Uc(UC_ARCH_RISCV, UC_MODE_RISCV32)
        self.uc.mem_map(0, 0x100000)
        self.uc.mem_write(self.base, self.code)
        self.emu = xpulp.XpulpEmulator(self.uc, [(self.base, self.code)] if sweep else [])
        self.elf = elf

    def words(self, fn: str) -> list[tuple[int, int]]:
        """(address, word) of every 32-bit instruction of ``fn``."""
        addr, size = self.funcs[fn]
        off = addr - self.base
        return [(a, w) for a, w, n in xpulp.sweep(self.code[off:off + size], addr) if n == 4]

    def xpulp(self, fn: str) -> list[Insn]:
        return [i for _, w in self.words(fn) if (i := decode(w)) is not None]

    def call(self, fn: str, *args: int) -> int:
        from unicorn.riscv_const import (
            UC_RISCV_REG_A0,
            UC_RISCV_REG_RA,
            UC_RISCV_REG_SP,
        )

        self.emu.counts.clear()
        self.emu.fault = None
        for i, v in enumerate(args):
            self.uc.reg_write(UC_RISCV_REG_A0 + i, v & M32)
        self.uc.reg_write(UC_RISCV_REG_RA, RET)
        self.uc.reg_write(UC_RISCV_REG_SP, STACK_TOP)
        self.uc.emu_start(self.funcs[fn][0], RET, count=50_000_000)
        assert self.emu.fault is None, self.emu.fault
        return self.uc.reg_read(UC_RISCV_REG_A0) & M32

    def write(self, addr: int, data: bytes) -> None:
        self.uc.mem_write(addr, data)

    def read(self, addr: int, n: int) -> bytes:
        return bytes(self.uc.mem_read(addr, n))


def model(name: str, *regs: int, imm: int = 0, reg: bool = False, mem: bytes = b"", addr: int = DATA):
    """Run one instruction in the Python model: rd = x3 (preloaded with regs[2] when given),
    rs1 = x1 = regs[0], rs2 = x2 = regs[1]. Returns the machine."""
    m = DictMachine({1: regs[0] if regs else 0, 2: regs[1] if len(regs) > 1 else 0, 3: regs[2] if len(regs) > 2 else 0},
                    {addr + i: b for i, b in enumerate(mem)})
    execute(Insn(name, 3, 1, 2, imm, reg=reg), 0x100, m, LoopState())
    return m


EDGE = [0, 1, 0x7F, 0x80, 0xFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0x80808080, 0x7F7F7F7F, 0x01FF80FF]


def _operands(rng: random.Random, n: int, k: int) -> list[tuple[int, ...]]:
    pool = [tuple(rng.choice(EDGE) for _ in range(k)) for _ in range(n // 4)]
    return pool + [tuple(rng.getrandbits(32) for _ in range(k)) for _ in range(n - len(pool))]


@pytest.mark.riscv_gcc
def test_header_builds_warning_free_both_ways(tmp_path):
    _need_gcc()
    src = tmp_path / "h.c"
    src.write_text('#include "mcuc_xpulp.h"\nint32_t f(int32_t a, uint32_t b) { return mcuc_xp_sdotsp_b(a, b, b); }\n')
    for defs in ([], ["-DMCUC_XPULP"]):
        r = subprocess.run([GCC, *CFLAGS, *defs, "-c", "-o", str(tmp_path / "h.o"), str(src)],
                           capture_output=True, text=True, check=False)
        assert r.returncode == 0 and not r.stderr, r.stderr


# (function, Xpulp mnemonics it must contain in order, immediates of those with one)
EXPECTED = {
    "t_sdotsp": ["pv.sdotsp.b"], "t_sdotusp": ["pv.sdotusp.b"], "t_dotsp": ["pv.dotsp.b"],
    "t_add_b": ["pv.add.b"], "t_mac": ["p.mac"], "t_max": ["p.max"], "t_min": ["p.min"],
    "t_maxu": ["p.maxu"], "t_minu": ["p.minu"],
    "t_clip8": [("p.clip", 8)], "t_clip1": [("p.clip", 1)], "t_clip0": [("p.clip", 0)],
    "t_clip31": [("p.clip", 31)], "t_clipu9": [("p.clipu", 9)], "t_clipu16": [("p.clipu", 16)],
    "t_lw_pi": [("p.lw", 8)], "t_lb_pi": [("p.lb", -3)], "t_lbu_pi": [("p.lbu", 5)],
    "t_lw_pr": ["p.lw"], "t_lb_pr": ["p.lb"], "t_lbu_pr": ["p.lbu"],
    "t_sw_pi": [("p.sw", 12)], "t_sb_pi": [("p.sb", -1)],
    "t_dot": [("lp.setup", 16), ("p.lw", 4), ("p.lw", 4), "pv.sdotsp.b"],
    "t_setupi": [("lp.setupi", 5), ("p.lw", 4), "p.mac"],
    "t_nested": ["lp.count", ("lp.starti", 8), ("lp.endi", 28), ("lp.setup", 16), ("p.lw", 4), ("p.lw", 4),
                 "pv.sdotsp.b", ("p.sw", 4)],
}


@pytest.mark.riscv_gcc
def test_every_emitted_word_decodes_to_the_intended_instruction(builds, request):
    xp, c = builds["xpulp"], builds["c"]
    opt = request.node.callspec.params["builds"]
    if opt == "-O0":
        # -O0 does not inline the static inline helpers: the words sit in the helpers' own copies.
        every = {i.name for a, w, n in xpulp.sweep(xp.code, xp.base) if n == 4 and (i := decode(w))}
        assert every == {w if isinstance(w, str) else w[0] for want in EXPECTED.values() for w in want}
        assert not any(n == 4 and decode(w) for a, w, n in xpulp.sweep(c.code, c.base))
        return
    for fn, want in EXPECTED.items():
        got = xp.xpulp(fn)
        names = [w if isinstance(w, str) else w[0] for w in want]
        assert [i.name for i in got] == names, (fn, [xpulp.fmt(i) for i in got])
        for i, w in zip(got, want):
            if isinstance(w, tuple):
                assert i.imm == w[1], (fn, xpulp.fmt(i))
            if i.name in xpulp.LOAD_SIZES:
                assert i.rd != i.rs1, (fn, xpulp.fmt(i))  # the ISA forbids it; early-clobber prevents it
                assert i.reg == fn.endswith("_pr"), (fn, xpulp.fmt(i))
        if len(got) == 1 and opt == "-O2":
            # A one-instruction helper reads the argument registers and leaves its result in a0
            # (p.s* store the second argument, a1); the pointer register is the compiler's choice.
            i = got[0]
            if i.name in xpulp.STORE_SIZES:
                assert i.rs2 == 11, (fn, xpulp.fmt(i))
            else:
                assert i.rd == 10, (fn, xpulp.fmt(i))
            if i.name in xpulp.LOAD_SIZES and i.reg:
                assert i.rs2 == 11, (fn, xpulp.fmt(i))
            elif i.name not in xpulp.LOAD_SIZES and i.name not in xpulp.STORE_SIZES:
                regs = (i.rs1,) if i.name in ("p.clip", "p.clipu") else (i.rs1, i.rs2)
                assert set(regs) <= {10, 11, 12}, (fn, xpulp.fmt(i))
        assert c.xpulp(fn) == [], f"the portable build of {fn} emitted Xpulp"
    # lp.setupi's count and end offset: 5 iterations of a 3-instruction body ending 16 bytes on.
    setupi = next(i for i in xp.xpulp("t_setupi") if i.name == "lp.setupi")
    assert (setupi.loop, setupi.imm, setupi.offset) == (0, 5, 16)
    nested = xp.xpulp("t_nested")
    assert [i.loop for i in nested if i.name.startswith("lp.")] == [1, 1, 1, 0]


def _clip_ref(name: str, is2: int, x: int) -> int:
    return model(name, x, imm=is2).get(3)


# name -> (function, number of register arguments, Python model of the result from the arguments)
ALU = {
    "t_sdotsp": (3, lambda acc, a, b: model("pv.sdotsp.b", a, b, acc).get(3)),
    "t_sdotusp": (3, lambda acc, a, b: model("pv.sdotusp.b", a, b, acc).get(3)),
    "t_dotsp": (2, lambda a, b: model("pv.dotsp.b", a, b, 0xDEADBEEF).get(3)),
    "t_add_b": (2, lambda a, b: model("pv.add.b", a, b).get(3)),
    "t_mac": (3, lambda acc, a, b: model("p.mac", a, b, acc).get(3)),
    "t_max": (2, lambda a, b: model("p.max", a, b).get(3)),
    "t_min": (2, lambda a, b: model("p.min", a, b).get(3)),
    "t_maxu": (2, lambda a, b: model("p.maxu", a, b).get(3)),
    "t_minu": (2, lambda a, b: model("p.minu", a, b).get(3)),
    **{f"t_clip{k}": (1, partial(_clip_ref, "p.clip", k)) for k in (8, 1, 0, 31)},
    **{f"t_clipu{k}": (1, partial(_clip_ref, "p.clipu", k)) for k in (9, 16)},
}


def _np_lanes(v: int, signed: bool) -> np.ndarray:
    return np.frombuffer(v.to_bytes(4, "little"), dtype=np.int8 if signed else np.uint8).astype(np.int64)


def test_model_against_plain_arithmetic():
    """The semantic model agrees with a direct restatement of the manual's formulas."""
    rng = random.Random(1)
    for a, b, acc in _operands(rng, 300, 3):
        dot = int((_np_lanes(a, True) * _np_lanes(b, True)).sum())
        assert model("pv.sdotsp.b", a, b, acc).get(3) == (acc + dot) & M32
        assert model("pv.dotsp.b", a, b, acc).get(3) == dot & M32
        udot = int((_np_lanes(a, False) * _np_lanes(b, True)).sum())
        assert model("pv.sdotusp.b", a, b, acc).get(3) == (acc + udot) & M32
        assert model("p.mac", a, b, acc).get(3) == (acc + a * b) & M32
        s = xpulp._s32
        assert model("p.max", a, b).get(3) == max(s(a), s(b)) & M32
        assert model("p.minu", a, b).get(3) == min(a, b)
        assert model("p.clip", a, imm=8).get(3) == min(max(s(a), -128), 127) & M32
        assert model("p.clipu", a, imm=9).get(3) == min(max(s(a), 0), 255)
        lanes = (_np_lanes(a, False) + _np_lanes(b, False)) & 0xFF
        assert model("pv.add.b", a, b).get(3) == int.from_bytes(bytes(lanes.astype(np.uint8)), "little")
    assert model("p.clip", 5, imm=0).get(3) == 0 and model("p.clip", M32 - 4, imm=0).get(3) == M32


@pytest.mark.riscv_gcc
def test_alu_and_simd_in_unicorn_match_model_and_portable_c(builds):
    xp, c = builds["xpulp"], builds["c"]
    rng = random.Random(6)
    for fn, (k, ref) in ALU.items():
        for args in _operands(rng, 120, k):
            want = ref(*args)
            assert xp.call(fn, *args) == want, (fn, [hex(a) for a in args])
            assert c.call(fn, *args) == want, (fn, "portable C", [hex(a) for a in args])


@pytest.mark.riscv_gcc
def test_post_increment_loads_and_stores(builds):
    rng = random.Random(7)
    pp = DATA + 0x800  # where the pointer variable lives
    for prog in (builds["xpulp"], builds["c"]):
        for _ in range(60):
            mem = bytes(rng.getrandbits(8) for _ in range(256))
            base = DATA + 16 + rng.randrange(0, 32) * (4 if rng.random() < 0.5 else 1)
            prog.write(DATA, mem)

            def run(fn, *extra, prog=prog, base=base):
                prog.write(pp, base.to_bytes(4, "little"))
                v = prog.call(fn, pp, *extra)
                return v, int.from_bytes(prog.read(pp, 4), "little")

            for fn, name, inc in (("t_lw_pi", "p.lw", 8), ("t_lb_pi", "p.lb", -3), ("t_lbu_pi", "p.lbu", 5)):
                m = model(name, base, imm=inc, mem=mem, addr=DATA)
                assert run(fn) == (m.get(3), m.get(1)), (fn, hex(base))
            for fn, name in (("t_lw_pr", "p.lw"), ("t_lb_pr", "p.lb"), ("t_lbu_pr", "p.lbu")):
                inc = rng.choice([-8, -1, 0, 1, 4, 12])
                m = model(name, base, inc & M32, reg=True, mem=mem, addr=DATA)
                assert run(fn, inc) == (m.get(3), m.get(1)), (fn, hex(base), inc)
            for fn, name, inc in (("t_sw_pi", "p.sw", 12), ("t_sb_pi", "p.sb", -1)):
                v = rng.getrandbits(32)
                prog.write(DATA, mem)
                _, ptr = run(fn, v)
                m = model(name, base, v, imm=inc, mem=mem, addr=DATA)
                assert ptr == m.get(1)
                assert prog.read(DATA, 256) == m.load(DATA, 256), (fn, hex(base))


@pytest.mark.riscv_gcc
@pytest.mark.parametrize("n", [1, 2, 3, 17, 256])
def test_hardware_loop_dot_product_is_bit_exact_with_numpy(builds, n):
    rng = np.random.default_rng(n)
    a = rng.integers(-128, 128, 4 * n, dtype=np.int8)
    b = rng.integers(-128, 128, 4 * n, dtype=np.int8)
    acc = int(rng.integers(-2**31, 2**31))
    want = (acc + int((a.astype(np.int64) * b.astype(np.int64)).sum())) & M32
    pa, pb = DATA, DATA + 0x2000
    for name, prog in builds.items():
        prog.write(pa, a.tobytes())
        prog.write(pb, b.tobytes())
        assert prog.call("t_dot", acc, pa, pb, n) == want, name
    counts = builds["xpulp"].emu.counts
    assert counts["lp.setup"] == 1 and counts["p.lw"] == 2 * n and counts["pv.sdotsp.b"] == n
    assert counts.get("hwloop.jump", 0) == n - 1


@pytest.mark.riscv_gcc
def test_loop_end_found_at_run_time_without_the_sweep(builds):
    """Without the pre-run sweep, lp.setup itself installs the loop-end hook when it executes."""
    prog = Program(builds["xpulp"].elf, sweep=False)
    a = np.arange(-40, 40, dtype=np.int8)
    prog.write(DATA, a.tobytes())
    prog.write(DATA + 0x100, a[::-1].tobytes())
    want = int((a.astype(np.int64) * a[::-1].astype(np.int64)).sum()) & M32
    assert prog.call("t_dot", 0, DATA, DATA + 0x100, 20) == want
    assert prog.emu.counts["hwloop.jump"] == 19


@pytest.mark.riscv_gcc
def test_out_of_range_fields_fail_the_assembly(tmp_path):
    _need_gcc()
    cases = [
        ("return MCUC_XP_CLIP(x, 32);", "Is2 must be 0..31"),
        (('__asm__ volatile(MCUC_XP_ASM_HWLOOP_BEGIN MCUC_XP_ASM_LP_SETUPI(0, 4096, 3) '
         '"nop\\n\\tnop\\n\\tnop\\n\\t" MCUC_XP_ASM_HWLOOP_END(3)); return x;'), "lp.setupi: count"),
        (('__asm__ volatile(MCUC_XP_ASM_HWLOOP_BEGIN MCUC_XP_ASM_LP_SETUP(0, "%0", 3) '
         '"nop\\n\\tnop\\n\\t" MCUC_XP_ASM_HWLOOP_END(3) : : "r"(x)); return x;'), "body is not 3 instructions"),
    ]
    for body, message in cases:
        src = tmp_path / "bad.c"
        src.write_text(f'#include "mcuc_xpulp.h"\nint32_t f(int32_t x) {{ {body} }}\n')
        r = subprocess.run([GCC, *CFLAGS, "-DMCUC_XPULP", "-c", "-o", str(tmp_path / "bad.o"), str(src)],
                           capture_output=True, text=True, check=False)
        assert r.returncode != 0 and message in r.stderr, (body, r.stderr)


@pytest.mark.riscv_gcc
def test_lp_setupi_constant_count_loop(builds):
    words = np.array([3, -7, 100000, 12, -2**31 + 5], dtype=np.int32)
    want = int(sum(int(w) + int(w) * int(w) for w in words)) & M32
    for name, prog in builds.items():
        prog.write(DATA, words.tobytes())
        assert prog.call("t_setupi", DATA) == want, name
    assert builds["xpulp"].emu.counts["hwloop.jump"] == 4


@pytest.mark.riscv_gcc
@pytest.mark.parametrize("n_out,n_in", [(1, 1), (3, 4), (5, 1), (4, 9)])
def test_nested_hardware_loops_long_form_outer(builds, n_out, n_in):
    rng = np.random.default_rng(10 * n_out + n_in)
    a = rng.integers(-128, 128, (n_out, 4 * n_in), dtype=np.int8)
    b = rng.integers(-128, 128, (n_out, 4 * n_in), dtype=np.int8)
    want = (a.astype(np.int64) * b.astype(np.int64)).sum(axis=1).astype(np.int32)
    pa, pb, po = DATA, DATA + 0x2000, DATA + 0x4000
    for name, prog in builds.items():
        prog.write(pa, a.tobytes())
        prog.write(pb, b.tobytes())
        prog.write(po, bytes(4 * (n_out + 1)))
        prog.call("t_nested", pa, pb, po, n_out, n_in)
        got = np.frombuffer(prog.read(po, 4 * (n_out + 1)), dtype=np.int32)
        assert list(got[:n_out]) == list(want), name
        assert got[n_out] == 0, f"{name}: the outer loop ran too often"
    assert builds["xpulp"].emu.counts.get("hwloop.jump", 0) == n_out * (n_in - 1) + (n_out - 1)


def test_loop_state_counts_down_and_prefers_loop_0():
    s = LoopState([0x100, 0x200], [0x120, 0x120], [3, 2])
    seen = [s.at(0x120) for _ in range(6)]
    # loop 0 runs 3 times (2 jumps), then loop 1 iterates once, then everything falls through.
    assert seen == [0x100, 0x100, 0x200, None, None, None]
    assert s.count == [0, 0]


def test_trap_on_an_instruction_outside_the_subset_stops_with_a_message():
    from unicorn import UC_ARCH_RISCV, UC_MODE_RISCV32, Uc

    uc = Uc(UC_ARCH_RISCV, UC_MODE_RISCV32)
    uc.mem_map(0, 0x10000)
    bad = 0x0000707B  # custom-3 funct3 111: no hardware-loop instruction
    uc.mem_write(0x1000, (0x00500513).to_bytes(4, "little") + bad.to_bytes(4, "little"))
    emu = xpulp.XpulpEmulator(uc)
    uc.emu_start(0x1000, 0x1010, count=10)
    assert emu.fault is not None and "0x0000707b at 0x00001004" in emu.fault


def test_timing_model_covers_the_subset():
    t = xpulp.load_timing()
    names = {v[0] for v in xpulp._LD_IMM.values()} | set(xpulp.STORE_SIZES) | set(xpulp._SIMD_B.values()) | \
        set(xpulp._MINMAX.values()) | set(xpulp._HWLOOP.values()) | {"p.mac", "p.clip", "p.clipu", "hwloop.jump"}
    assert names <= set(t.xpulp)
    assert t.cycles["hwloop_branch"] == 0 and t.cycles["multiply"] == 1 and t.taken_branch_extra == 2
    assert xpulp.xpulp_cycles({"pv.sdotsp.b": 4, "p.lw": 8, "hwloop.jump": 3, "lp.setup": 1}) == 13
