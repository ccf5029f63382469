"""The fast Xpulp emulation (compiler/sim/riscv_xpulp.py: load-time rewriting into RV32IM stubs)
instruction by instruction against the Python semantic model (xpulp.execute), hardware loops
against the trap emulator and numpy, and the RI5CY cost table (riscv_cycles.py) on hand-made
code. Needs only Unicorn: the programs are encoded here and checked with xpulp.decode."""

from __future__ import annotations

import random
import struct

import numpy as np
import pytest
from unicorn import UC_ARCH_RISCV, UC_MODE_RISCV32, Uc
from unicorn.riscv_const import UC_RISCV_REG_PC, UC_RISCV_REG_X0

from compiler.sim import riscv_cycles, riscv_xpulp, xpulp
from compiler.sim.riscv_xpulp import _i, _r, _s, addi, jal
from compiler.sim.xpulp import DictMachine, Insn, LoopState, decode, execute

TEXT, DATA = 0x10000, 0x40000
M32 = 0xFFFFFFFF
MEM = [(TEXT, 0x10000), (DATA, 0x10000)]

_SIMD = {"pv.sdotsp.b": 0x5C, "pv.sdotusp.b": 0x54, "pv.dotsp.b": 0x4C, "pv.add.b": 0x00}
_MINMAX = {"p.min": 4, "p.minu": 5, "p.max": 6, "p.maxu": 7}
_LD_IMM = {"p.lb": 0, "p.lh": 1, "p.lw": 2, "p.lbu": 4, "p.lhu": 5}
_LD_REG = {"p.lb": 0x00, "p.lbu": 0x20, "p.lh": 0x08, "p.lhu": 0x28, "p.lw": 0x10}
_ST = {"p.sb": 0, "p.sh": 1, "p.sw": 2}


def encode(i: Insn) -> int:
    """The word of an Xpulp instruction ([ISE] encodings, docs/riscv.md); checked by decode()."""
    n = i.name
    if n in _SIMD:
        w = _r(_SIMD[n], i.rs2, i.rs1, 1, i.rd, 0x57)
    elif n == "p.mac":
        w = _r(0x21, i.rs2, i.rs1, 0, i.rd)
    elif n in _MINMAX:
        w = _r(0x02, i.rs2, i.rs1, _MINMAX[n], i.rd)
    elif n in ("p.clip", "p.clipu"):
        w = _r(0x0A, i.imm, i.rs1, 1 if n == "p.clip" else 2, i.rd)
    elif n in _LD_IMM and i.reg:
        w = _r(_LD_REG[n], i.rs2, i.rs1, 7, i.rd, 0x0B)
    elif n in _LD_IMM:
        w = _i(i.imm, i.rs1, _LD_IMM[n], i.rd, 0x0B)
    elif n in _ST:
        w = _s(i.imm, i.rs2, i.rs1, _ST[n]) & ~0x7F | 0x2B
    elif n == "lp.setupi":
        w = (i.imm << 20) | ((i.offset >> 1) << 15) | (5 << 12) | (i.loop << 7) | 0x7B
    elif n == "lp.setup":
        w = ((i.imm >> 1) << 20) | (i.rs1 << 15) | (4 << 12) | (i.loop << 7) | 0x7B
    else:
        raise ValueError(n)
    assert decode(w) == i, (n, hex(w), decode(w), i)
    return w


def words(*ws) -> bytes:
    return b"".join(struct.pack("<I", w & M32) for w in ws)


class Machine:
    """A bare RV32 Unicorn machine running ``code`` at TEXT with the rewrite or the trap emulator."""

    def __init__(self, code: bytes, mode: str):
        self.uc = Uc(UC_ARCH_RISCV, UC_MODE_RISCV32)
        for a, n in MEM:
            self.uc.mem_map(a, n)
        self.uc.mem_write(TEXT, code)
        self.end = TEXT + len(code)
        if mode == "rewrite":
            rw = riscv_xpulp.Rewriter([(TEXT, code)], MEM)
            assert rw.unsupported is None, rw.unsupported
            rw.install(self.uc)
            self.emu = None
        else:
            self.emu = xpulp.XpulpEmulator(self.uc, [(TEXT, code)])

    def run(self, regs: dict[int, int], mem: bytes = b"") -> tuple[list[int], bytes]:
        for r in range(1, 32):
            self.uc.reg_write(UC_RISCV_REG_X0 + r, regs.get(r, 0) & M32)
        self.uc.mem_write(DATA, mem.ljust(256, b"\0"))
        self.uc.emu_start(TEXT, self.end, count=10_000_000)
        assert self.uc.reg_read(UC_RISCV_REG_PC) == self.end
        assert self.emu is None or self.emu.fault is None
        return [self.uc.reg_read(UC_RISCV_REG_X0 + r) & M32 for r in range(32)], bytes(self.uc.mem_read(DATA, 256))


def _model(ins: Insn, regs: dict[int, int], mem: bytes) -> tuple[list[int], bytes]:
    m = DictMachine(dict(regs), {DATA + k: b for k, b in enumerate(mem.ljust(256, b"\0"))})
    execute(ins, TEXT, m, LoopState())
    return [m.get(r) & M32 for r in range(32)], bytes(m.mem.get(DATA + k, 0) for k in range(256))


EDGE = [0, 1, 0x7F, 0x80, 0xFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0x80808080, 0x7F7F7F7F, 0x01FF80FF]


def _cases():
    rng = random.Random(6)
    out = []
    regs3 = [(3, 1, 2), (1, 1, 2), (2, 1, 2), (5, 5, 5), (0, 1, 2), (31, 6, 7), (10, 10, 11)]
    for n in list(_SIMD) + ["p.mac"] + list(_MINMAX):
        for rd, rs1, rs2 in regs3:
            out.append(Insn(n, rd, rs1, rs2))
    for n in ("p.clip", "p.clipu"):
        for is2 in (0, 1, 8, 9, 16, 31):
            out.append(Insn(n, rng.choice([3, 1, 7]), rng.choice([1, 5]), 0, is2))
    for n in _LD_IMM:
        for rd, rs1, imm in [(3, 1, 4), (5, 6, -3), (0, 7, 1), (8, 9, 0)]:
            out.append(Insn(n, rd, rs1, 0, imm))
        for rd, rs1, rs2 in [(3, 1, 2), (2, 1, 2), (5, 6, 6)]:
            out.append(Insn(n, rd, rs1, rs2, reg=True))
    for n in _ST:
        for rs1, rs2, imm in [(1, 2, 4), (3, 3, -2), (6, 0, 12)]:
            out.append(Insn(n, 0, rs1, rs2, imm))
    return out


@pytest.mark.parametrize("ins", _cases(), ids=lambda i: xpulp.fmt(i))
def test_each_instruction_rewritten_matches_the_model(ins):
    m = Machine(words(encode(ins)), "rewrite")
    rng = random.Random(hash(xpulp.fmt(ins)) & 0xFFFF)
    for trial in range(12):
        regs = {r: (rng.choice(EDGE) if trial % 3 == 0 else rng.getrandbits(32)) for r in range(1, 32)}
        if ins.name in _LD_IMM or ins.name in _ST:
            regs[ins.rs1] = DATA + 64 + rng.randrange(0, 64)
            if ins.reg and ins.rs2 != ins.rs1:
                regs[ins.rs2] = rng.randrange(-32, 32) & M32
        mem = bytes(rng.getrandbits(8) for _ in range(256))
        assert m.run(regs, mem) == _model(ins, {0: 0, **regs}, mem), (xpulp.fmt(ins), trial)


def _dot_program(count: int, setup_reg: bool) -> bytes:
    """acc(x14) += sum over count words of int8x4 dot products of [x11] and [x13], in a
    hardware loop whose last instruction is the sdotsp; then x15 = x14 + 1 (plain, after the loop)."""
    body = [encode(Insn("p.lw", 10, 11, 0, 4)), encode(Insn("p.lw", 12, 13, 0, 4)),
            encode(Insn("pv.sdotsp.b", 14, 10, 12))]
    setup = encode(Insn("lp.setup", 0, 16, 0, 4 * (len(body) + 1), 0)) if setup_reg else \
        encode(Insn("lp.setupi", 0, 0, 0, count, 0, 4 * (len(body) + 1)))
    return words(setup, *body, addi(15, 14, 1))


@pytest.mark.parametrize("count", [1, 2, 7, 64])
@pytest.mark.parametrize("setup_reg", [False, True])
def test_hardware_loop_rewritten_matches_numpy_and_trap(count, setup_reg):
    rng = np.random.default_rng(count)
    a = rng.integers(-128, 128, 4 * count, dtype=np.int8)
    b = rng.integers(-128, 128, 4 * count, dtype=np.int8)
    mem = a.tobytes() + b.tobytes()
    regs = {11: DATA, 13: DATA + 4 * count, 14: 1000, 16: count}
    code = _dot_program(count, setup_reg)
    want = 1000 + int(np.dot(a.astype(np.int64), b.astype(np.int64)))
    fast = Machine(code, "rewrite").run(regs, mem)
    slow = Machine(code, "trap").run(regs, mem)
    assert fast == slow
    assert fast[0][14] == want & M32 and fast[0][15] == (want + 1) & M32
    assert fast[0][11] == DATA + 4 * count


def test_nested_loops_sharing_an_end_and_a_plain_last_instruction():
    """Outer loop 1 (count from x16) around inner loop 0 (constant 3), both ending after the same
    plain `addi`: loop 0 finishes before loop 1 iterates, as LoopState.at prescribes."""
    inner = [addi(20, 20, 1), addi(21, 21, 2), addi(22, 22, 3)]
    outer_setup = encode(Insn("lp.setup", 0, 16, 0, 4 * (len(inner) + 2), 1))
    inner_setup = encode(Insn("lp.setupi", 0, 0, 0, 3, 0, 4 * (len(inner) + 1)))
    code = words(outer_setup, inner_setup, *inner, addi(23, 22, 0))
    regs = {16: 5}
    fast = Machine(code, "rewrite").run(regs)
    slow = Machine(code, "trap").run(regs)
    assert fast == slow
    # each outer iteration starts at the inner setup, which re-arms loop 0: 5 x 3 inner bodies.
    assert fast[0][20] == 15 and fast[0][22] == 45 and fast[0][23] == 45


def test_rewrite_refuses_what_it_cannot_express():
    starti = (8 << 20) | (0 << 12) | 0x7B  # lp.starti x0, 8
    rw = riscv_xpulp.Rewriter([(TEXT, words(starti, addi(1, 1, 1)))], MEM)
    assert rw.unsupported and "lp.starti" in rw.unsupported
    # a loop whose last body instruction is PC-relative (auipc) cannot be moved into a stub
    setupi = encode(Insn("lp.setupi", 0, 0, 0, 2, 0, 8))
    rw = riscv_xpulp.Rewriter([(TEXT, words(setupi, 0x00000097, addi(1, 1, 1)))], MEM)
    assert rw.unsupported and "PC-relative" in rw.unsupported


def test_rewrite_encodings_jal_and_li():
    for off in (0, 4, -4, 2046, -2048, 0xFFFFE, -(1 << 20)):
        w = jal(off)
        imm = ((w >> 31) << 20) | (((w >> 12) & 0xFF) << 12) | (((w >> 20) & 1) << 11) | (((w >> 21) & 0x3FF) << 1)
        assert (imm - (1 << 21) if imm >> 20 else imm) == off
    with pytest.raises(ValueError):
        jal(1 << 20)
    for v in (0, 1, -1, 2047, -2048, 2048, 0x7F7F7F7F, 0x80808080, 0x1C000000, 0xFFFFF800):
        uc = Uc(UC_ARCH_RISCV, UC_MODE_RISCV32)
        uc.mem_map(TEXT, 0x1000)
        code = words(*riscv_xpulp.li(9, v))
        uc.mem_write(TEXT, code)
        uc.emu_start(TEXT, TEXT + len(code))
        assert uc.reg_read(UC_RISCV_REG_X0 + 9) & M32 == v & M32


# ---- the RI5CY cost table ---------------------------------------------------------------------------

def _table(code: bytes):
    _, table = riscv_cycles.build_table([(TEXT, code)], riscv_cycles.load_model())
    return [(TEXT + 2 * k, t & riscv_cycles.MASK, bool(t & riscv_cycles.COND))
            for k, t in enumerate(table) if t & riscv_cycles.START]


def test_cost_table_classes_stalls_and_branches():
    lw = _i(0, 11, 2, 10, 0x03)  # lw a0, 0(a1)
    add_use = _r(0, 10, 10, 0, 12)  # add a2, a0, a0: uses the load
    add_other = _r(0, 13, 13, 0, 12)
    mulh = _r(1, 6, 5, 1, 7)
    div = _r(1, 6, 5, 4, 7)
    beq = 0x00000063  # beq x0, x0, 0
    jal_ = jal(8, 1)
    c_lw = 0x4188  # c.lw a0, 0(a1)
    c_add = 0x952A  # c.add a0, a0, a0 (reads a0)
    plw = encode(Insn("p.lw", 10, 11, 0, 4))
    sdot = encode(Insn("pv.sdotsp.b", 14, 10, 12))
    code = words(lw, add_use, lw, add_other, mulh, div, beq, jal_) + struct.pack("<HH", c_lw, c_add) + \
        words(plw, sdot, plw, add_other)
    got = [(c, cond) for _, c, cond in _table(code)]
    assert got == [(2, False), (1, False), (1, False), (1, False), (5, False), (19, False), (1, True), (2, False),
                   (2, False), (1, False), (2, False), (1, False), (1, False), (1, False)]


def test_table_blocks_count_sites_once_and_stubs_never():
    code = _dot_program(4, False)
    base, table = riscv_cycles.build_table([(TEXT, code)], riscv_cycles.load_model())
    blocks = riscv_cycles.TableBlocks(base, table)
    # 5 instructions; the second p.lw feeds the sdotsp right after it: one load-use stall.
    assert blocks.block(TEXT, len(code)) == (5, 6, 0)
    assert blocks.block(0x7000_0000, 64) == (0, 0, 0)
