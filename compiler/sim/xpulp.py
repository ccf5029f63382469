"""Xpulp (RI5CY / GAP-8, "Xpulpv2") subset: decoder, exact semantic model, Unicorn emulation.

The subset is what ``runtime_c/include/mcuc_xpulp.h`` emits: post-increment loads/stores,
hardware loops, p.mac, p.min/max(u), p.clip(u), pv.add.b and the byte dot products. Encodings
follow the PULP-era CV32E40P user manual, docs/source/instruction_set_extensions.rst
(openhwgroup/cv32e40p commit 0822318c), cited per group below as [ISE <section>]; the hardware-loop
end address convention follows corev_hw_loop.rst of CV32E40P v1.7.2 (end = the address just after
the last body instruction). docs/riscv.md has the table.

Emulation in Unicorn (``XpulpEmulator``): Unicorn 2.1.4's RV32 CPU raises an illegal-instruction
exception for every Xpulp word and delivers it to UC_HOOK_INTR with intno 2 (the RISC-V cause
"illegal instruction") and PC already advanced past the 4-byte instruction (measured; mepc/mcause
are not written). The hook decodes the word at PC - 4, applies the model, writes the registers and
memory back and resumes at the next PC. Hardware loops are emulated with one UC_HOOK_CODE per loop
end address, each registered for that single address: the code is swept once before running to
find every lp.setup/lp.setupi/lp.endi (their targets are PC-relative constants), so only the
instruction just after a loop body calls Python, once per iteration; the hook decrements the count
and writes PC = loop start. An end address first seen at run time (an lp.endi outside the swept
code) gets its hook then, and its translated block is dropped from the cache so the hook applies.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Protocol

import yaml

MASK32 = 0xFFFFFFFF
TIMING_FILE = Path(__file__).with_name("ri5cy.yaml")


def _s32(v: int) -> int:
    v &= MASK32
    return v - (1 << 32) if v & 0x80000000 else v


def _sext(v: int, bits: int) -> int:
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


@dataclass(frozen=True)
class Insn:
    """One decoded Xpulp instruction. ``imm`` is the immediate as the semantics use it (byte offset
    for loads/stores and loop offsets, count for lp.counti/lp.setupi, Is2 for clips)."""

    name: str
    rd: int = 0
    rs1: int = 0
    rs2: int = 0
    imm: int = 0
    loop: int = 0  # hardware-loop index L
    offset: int = 0  # lp.setupi: end offset in bytes (uimmS << 1)
    reg: bool = False  # post-increment load by register rs2 rather than by imm


# [ISE "SIMD" encoding table]: opcode 0x57, funct5 = bits 31:27, bits 26:25 = 0, funct3 001 = .b
_SIMD_B = {0b10111: "pv.sdotsp.b", 0b10101: "pv.sdotusp.b", 0b10011: "pv.dotsp.b", 0b00000: "pv.add.b"}
# [ISE "General ALU Encoding"]: opcode 0x33, funct7 000 0010, funct3 selects the operation
_MINMAX = {4: "p.min", 5: "p.minu", 6: "p.max", 7: "p.maxu"}
# [ISE "Post-Incrementing Load & Store"]: custom-0 0x0b; immediate form by funct3 ...
_LD_IMM = {0: ("p.lb", 1, True), 4: ("p.lbu", 1, False), 1: ("p.lh", 2, True), 5: ("p.lhu", 2, False),
           2: ("p.lw", 4, True)}
# ... register form funct3 111 by funct7
_LD_REG = {0x00: ("p.lb", 1, True), 0x20: ("p.lbu", 1, False), 0x08: ("p.lh", 2, True),
           0x28: ("p.lhu", 2, False), 0x10: ("p.lw", 4, True)}
# custom-1 0x2b, S-type immediate post-increment stores by funct3
_ST_IMM = {0: ("p.sb", 1), 1: ("p.sh", 2), 2: ("p.sw", 4)}
# [ISE "Hardware Loops" encoding]: custom-3 0x7b by funct3
_HWLOOP = {0: "lp.starti", 1: "lp.endi", 2: "lp.count", 3: "lp.counti", 4: "lp.setup", 5: "lp.setupi"}

LOAD_SIZES = {v[0]: (v[1], v[2]) for v in _LD_IMM.values()}  # mnemonic -> (bytes, signed)
STORE_SIZES = {v[0]: v[1] for v in _ST_IMM.values()}  # mnemonic -> bytes


def decode(word: int) -> Insn | None:
    """The Xpulp instruction a 32-bit word encodes, or None when it is not in the subset."""
    op = word & 0x7F
    rd = (word >> 7) & 0x1F
    f3 = (word >> 12) & 7
    rs1 = (word >> 15) & 0x1F
    rs2 = (word >> 20) & 0x1F
    f7 = word >> 25
    imm_i = _sext(word >> 20, 12)
    if op == 0x57 and f3 == 1 and (f7 & 3) == 0 and (f7 >> 2) in _SIMD_B:
        return Insn(_SIMD_B[f7 >> 2], rd, rs1, rs2)
    if op == 0x33:
        if f7 == 0x21 and f3 == 0:  # [ISE "MAC Encoding"] p.mac
            return Insn("p.mac", rd, rs1, rs2)
        if f7 == 0x02 and f3 in _MINMAX:
            return Insn(_MINMAX[f3], rd, rs1, rs2)
        if f7 == 0x0A and f3 in (1, 2):  # [ISE "General ALU Encoding"] Is2 in the rs2 field
            return Insn("p.clip" if f3 == 1 else "p.clipu", rd, rs1, 0, rs2)
        return None
    if op == 0x0B:
        if f3 == 7:
            if f7 in _LD_REG:
                return Insn(_LD_REG[f7][0], rd, rs1, rs2, reg=True)
            return None
        if f3 in _LD_IMM:
            return Insn(_LD_IMM[f3][0], rd, rs1, 0, imm_i)
        return None
    if op == 0x2B and f3 in _ST_IMM:
        return Insn(_ST_IMM[f3][0], 0, rs1, rs2, _sext((f7 << 5) | rd, 12))
    if op == 0x7B and f3 in _HWLOOP and (rd >> 1) == 0:
        uimm = word >> 20
        name = _HWLOOP[f3]
        if name == "lp.setupi":
            return Insn(name, 0, 0, 0, uimm, rd & 1, rs1 << 1)
        if name in ("lp.count", "lp.setup"):
            return Insn(name, 0, rs1, 0, uimm << 1 if name == "lp.setup" else 0, rd & 1)
        if name == "lp.counti":
            return Insn(name, 0, 0, 0, uimm, rd & 1)
        return Insn(name, 0, 0, 0, uimm << 1, rd & 1)  # lp.starti / lp.endi
    return None


def fmt(insn: Insn) -> str:
    """Assembly text in PULP syntax, for messages and disassembly listings."""
    n, x = insn.name, lambda r: f"x{r}"
    if n.startswith("lp."):
        if n == "lp.setup":
            return f"{n} x{insn.loop}, {x(insn.rs1)}, {insn.imm}"
        if n == "lp.setupi":
            return f"{n} x{insn.loop}, {insn.imm}, {insn.offset}"
        if n == "lp.count":
            return f"{n} x{insn.loop}, {x(insn.rs1)}"
        return f"{n} x{insn.loop}, {insn.imm}"
    if n in LOAD_SIZES:
        return f"{n} {x(insn.rd)}, {x(insn.rs2) if insn.reg else insn.imm}({x(insn.rs1)}!)"
    if n in STORE_SIZES:
        return f"{n} {x(insn.rs2)}, {insn.imm}({x(insn.rs1)}!)"
    if n in ("p.clip", "p.clipu"):
        return f"{n} {x(insn.rd)}, {x(insn.rs1)}, {insn.imm}"
    return f"{n} {x(insn.rd)}, {x(insn.rs1)}, {x(insn.rs2)}"


# ---- semantics ------------------------------------------------------------------------------------

class Machine(Protocol):
    """What the semantic model needs from a CPU: x-registers (unsigned 32-bit) and bytes."""

    def get(self, r: int) -> int: ...
    def set(self, r: int, v: int) -> None: ...
    def load(self, addr: int, size: int) -> bytes: ...
    def store(self, addr: int, data: bytes) -> None: ...


@dataclass
class LoopState:
    """The two hardware-loop register sets (loop 0 is the inner one and has priority)."""

    start: list[int] = field(default_factory=lambda: [0, 0])
    end: list[int] = field(default_factory=lambda: [0, 0])
    count: list[int] = field(default_factory=lambda: [0, 0])

    def at(self, pc: int) -> int | None:
        """Called when execution reaches ``pc``: the loop start to branch back to, or None.

        A loop whose end is ``pc`` and whose count is >= 2 is counted down and taken; count 1 is
        counted down to 0 and falls through (the body ran ``count`` times). Loop 0 is checked first,
        so an inner loop that ends where the outer one ends finishes before the outer one iterates.
        """
        for i in (0, 1):
            if self.count[i] and self.end[i] == pc:
                self.count[i] -= 1
                if self.count[i]:
                    return self.start[i]
        return None


def _lanes(v: int, signed: bool) -> list[int]:
    return [(_sext(v >> s, 8) if signed else (v >> s) & 0xFF) for s in (0, 8, 16, 24)]


def _clip_bounds(is2: int) -> tuple[int, int]:
    # [ISE "ALU" table]: [-2^(Is2-1), 2^(Is2-1)-1]; Is2 = 0 gives [-1, 0] (the table's note).
    hi = (1 << (is2 - 1)) - 1 if is2 else 0
    return -hi - 1, hi


def execute(insn: Insn, pc: int, m: Machine, loops: LoopState) -> int:
    """Apply ``insn`` at ``pc`` to ``m`` and ``loops``; returns the next PC (pc + 4)."""
    n = insn.name
    get = m.get
    if n in ("pv.sdotsp.b", "pv.sdotusp.b", "pv.dotsp.b"):
        a = _lanes(get(insn.rs1), n != "pv.sdotusp.b")
        b = _lanes(get(insn.rs2), True)
        acc = get(insn.rd) if n != "pv.dotsp.b" else 0
        m.set(insn.rd, (acc + sum(x * y for x, y in zip(a, b))) & MASK32)
    elif n == "pv.add.b":
        a, b = get(insn.rs1), get(insn.rs2)
        m.set(insn.rd, sum((((a >> s) + (b >> s)) & 0xFF) << s for s in (0, 8, 16, 24)))
    elif n == "p.mac":
        m.set(insn.rd, (get(insn.rd) + get(insn.rs1) * get(insn.rs2)) & MASK32)
    elif n in ("p.min", "p.max"):
        a, b = _s32(get(insn.rs1)), _s32(get(insn.rs2))
        m.set(insn.rd, (min(a, b) if n == "p.min" else max(a, b)) & MASK32)
    elif n in ("p.minu", "p.maxu"):
        a, b = get(insn.rs1), get(insn.rs2)
        m.set(insn.rd, min(a, b) if n == "p.minu" else max(a, b))
    elif n in ("p.clip", "p.clipu"):
        lo, hi = _clip_bounds(insn.imm)
        if n == "p.clipu":
            lo = 0
        m.set(insn.rd, min(max(_s32(get(insn.rs1)), lo), hi) & MASK32)
    elif n in LOAD_SIZES:
        size, signed = LOAD_SIZES[n]
        base = get(insn.rs1)
        inc = get(insn.rs2) if insn.reg else insn.imm
        v = int.from_bytes(m.load(base, size), "little", signed=signed)
        # The ISA forbids rd == rs1 here; the model writes the pointer first, the data last.
        m.set(insn.rs1, (base + inc) & MASK32)
        m.set(insn.rd, v & MASK32)
    elif n in STORE_SIZES:
        size = STORE_SIZES[n]
        base = get(insn.rs1)
        m.store(base, (get(insn.rs2) & ((1 << (8 * size)) - 1)).to_bytes(size, "little"))
        m.set(insn.rs1, (base + insn.imm) & MASK32)
    elif n == "lp.starti":
        loops.start[insn.loop] = (pc + insn.imm) & MASK32
    elif n == "lp.endi":
        loops.end[insn.loop] = (pc + insn.imm) & MASK32
    elif n == "lp.count":
        loops.count[insn.loop] = get(insn.rs1)
    elif n == "lp.counti":
        loops.count[insn.loop] = insn.imm
    elif n == "lp.setup":
        L = insn.loop
        loops.start[L], loops.end[L], loops.count[L] = pc + 4, (pc + insn.imm) & MASK32, get(insn.rs1)
    elif n == "lp.setupi":
        L = insn.loop
        loops.start[L], loops.end[L], loops.count[L] = pc + 4, (pc + insn.offset) & MASK32, insn.imm
    else:
        raise ValueError(f"no semantics for {n}")
    return (pc + 4) & MASK32


class DictMachine:
    """A plain Python CPU for the model alone: 32 registers and a sparse byte memory."""

    def __init__(self, regs: dict[int, int] | None = None, mem: dict[int, int] | None = None):
        self.regs = [0] * 32
        for r, v in (regs or {}).items():
            self.set(r, v)
        self.mem = dict(mem or {})

    def get(self, r: int) -> int:
        return self.regs[r]

    def set(self, r: int, v: int) -> None:
        if r:
            self.regs[r] = v & MASK32

    def load(self, addr: int, size: int) -> bytes:
        return bytes(self.mem.get((addr + i) & MASK32, 0) for i in range(size))

    def store(self, addr: int, data: bytes) -> None:
        for i, b in enumerate(data):
            self.mem[(addr + i) & MASK32] = b


# ---- Unicorn ----------------------------------------------------------------------------------------

class _UcMachine:
    def __init__(self, uc):
        from unicorn.riscv_const import UC_RISCV_REG_X0

        self.uc, self.x0 = uc, UC_RISCV_REG_X0

    def get(self, r: int) -> int:
        return self.uc.reg_read(self.x0 + r) & MASK32 if r else 0

    def set(self, r: int, v: int) -> None:
        if r:
            self.uc.reg_write(self.x0 + r, v & MASK32)

    def load(self, addr: int, size: int) -> bytes:
        return bytes(self.uc.mem_read(addr, size))

    def store(self, addr: int, data: bytes) -> None:
        self.uc.mem_write(addr, data)


def sweep(code: bytes, base: int) -> list[tuple[int, int, int]]:
    """(address, word, length) of every instruction in a linear sweep of RV32IMC code (16-bit when
    the low two bits are not 11). GCC puts no data in .text, so the sweep stays in step."""
    out, i = [], 0
    while i + 2 <= len(code):
        lo = code[i] | code[i + 1] << 8
        if lo & 3 == 3 and i + 4 <= len(code):
            out.append((base + i, struct.unpack_from("<I", code, i)[0], 4))
            i += 4
        else:
            out.append((base + i, lo, 2))
            i += 2
    return out


def loop_ends(code: bytes, base: int) -> set[int]:
    """Every hardware-loop end address the code can set (lp.setup, lp.setupi, lp.endi)."""
    ends = set()
    for addr, word, size in sweep(code, base):
        if size == 4:
            insn = decode(word)
            if insn is not None and insn.name in ("lp.setup", "lp.endi"):
                ends.add((addr + insn.imm) & MASK32)
            elif insn is not None and insn.name == "lp.setupi":
                ends.add((addr + insn.offset) & MASK32)
    return ends


class XpulpEmulator:
    """Emulates the Xpulp subset on a ``Uc(UC_ARCH_RISCV, UC_MODE_RISCV32)``.

    ``code`` is a list of (base address, bytes) of the executable regions to sweep for hardware
    loops. ``counts`` tallies executed Xpulp instructions by name (plus "hwloop.jump" for the
    zero-overhead branches back), which a cycle model charges from ri5cy.yaml. An illegal word that
    is not in the subset stops the emulation with ``fault`` set.
    """

    def __init__(self, uc, code: Iterable[tuple[int, bytes]] = (), on_fault: Callable[[str], None] | None = None):
        import unicorn

        self.uc = uc
        self.loops = LoopState()
        self.machine = _UcMachine(uc)
        self.counts: dict[str, int] = {}
        self.fault: str | None = None
        self._on_fault = on_fault
        self._decoded: dict[int, Insn] = {}
        self._hooked: set[int] = set()
        self._unicorn = unicorn
        uc.hook_add(unicorn.UC_HOOK_INTR, self._on_intr)
        for base, data in code:
            for end in loop_ends(bytes(data), base):
                self._hook_end(end)

    def _hook_end(self, addr: int) -> None:
        if addr in self._hooked:
            return
        self._hooked.add(addr)
        self.uc.hook_add(self._unicorn.UC_HOOK_CODE, self._on_end, begin=addr, end=addr)

    def _stop(self, msg: str) -> None:
        self.fault = msg
        if self._on_fault:
            self._on_fault(msg)
        self.uc.emu_stop()

    def _on_intr(self, uc, intno, _user) -> None:
        from unicorn.riscv_const import UC_RISCV_REG_PC

        pc = uc.reg_read(UC_RISCV_REG_PC) - 4
        if intno != 2:
            self._stop(f"exception {intno} at 0x{pc + 4:08x}")
            return
        insn = self._decoded.get(pc)
        if insn is None:
            word = struct.unpack("<I", uc.mem_read(pc, 4))[0]
            insn = decode(word)
            if insn is None:
                self._stop(f"illegal instruction 0x{word:08x} at 0x{pc:08x} (not in the Xpulp subset)")
                return
            self._decoded[pc] = insn
        execute(insn, pc, self.machine, self.loops)
        self.counts[insn.name] = self.counts.get(insn.name, 0) + 1
        if insn.name in ("lp.setup", "lp.setupi", "lp.endi") and self.loops.end[insn.loop] not in self._hooked:
            end = self.loops.end[insn.loop]
            self._hook_end(end)
            uc.ctl_remove_cache(end & ~3, (end & ~3) + 4)
        # Unicorn resumes at PC, already pc + 4: leaving it unwritten saves ~30% per trap (a PC
        # write makes Unicorn leave the translated block). When the instruction ends a loop body,
        # the loop-end code hook at pc + 4 takes the branch back.

    def _on_end(self, uc, address, size, _user) -> None:
        from unicorn.riscv_const import UC_RISCV_REG_PC

        back = self.loops.at(address)
        if back is not None:
            self.counts["hwloop.jump"] = self.counts.get("hwloop.jump", 0) + 1
            uc.reg_write(UC_RISCV_REG_PC, back)


# ---- timing -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Timing:
    name: str
    description: str
    cycles: dict[str, int]  # class -> cycles
    xpulp: dict[str, str]  # Xpulp mnemonic -> class
    load_use_stall: int
    taken_branch_extra: int


@cache
def load_timing(path: str | None = None) -> Timing:
    d = yaml.safe_load(Path(path or TIMING_FILE).read_text())
    classes = {c["name"]: int(c["cycles"]) for c in d["classes"]}
    xp = {m: c["name"] for c in d["classes"] for m in c.get("xpulp", [])}
    return Timing(d["name"], d["description"], classes, xp, int(d["load_use_stall"]),
                  int(d["taken_branch_extra"]))


def xpulp_cycles(counts: dict[str, int], timing: Timing | None = None) -> int:
    """Cycles of the executed Xpulp instructions tallied by ``XpulpEmulator.counts`` (stalls, which
    depend on the neighbouring instructions, are the cycle model's business)."""
    t = timing or load_timing()
    return sum(t.cycles[t.xpulp[name]] * n for name, n in counts.items())
