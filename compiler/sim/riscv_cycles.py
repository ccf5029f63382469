"""Cycle estimates for RV32IMC (+ the Xpulp subset) from the RI5CY timing model in ``ri5cy.yaml``.

``cost_table(elf)`` produces the same per-halfword table as ``cycles.cost_table`` does for
Cortex-M4 (bits 0-5 cycles of the instruction starting there, bit 6 "an instruction starts here",
bit 7 "conditional branch: + refill when taken"), so the QEMU plugin and the Unicorn runners sum it
per executed block without knowing the architecture. Per instruction:

- the class cycles of ri5cy.yaml (ALU / mul / Xpulp MAC and SIMD 1, mulh 5, div 19, jump 2, ...);
- a conditional branch costs 1 and carries the COND flag; the engines add ``taken_branch_extra``
  (2: 3 cycles for a taken branch) when the next executed block is not its fall-through;
- a load (lb..lw, c.lw, c.lwsp, p.l*) costs ``load_use_stall`` (1) more when the instruction after
  it *in the code* reads its destination register (so the estimate does not depend on how an
  engine cuts blocks; a load that ends a hardware-loop body is checked against the instruction
  after the body, not against the body's first instruction);
- a hardware loop's branch back costs nothing (zero-overhead loops: the engines never see it as
  an instruction).

Instructions are found by a linear RVC-aware sweep of the executable sections (GCC puts no data
in .text); Xpulp words are decoded by ``xpulp.decode``, everything else by capstone.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

import yaml

from . import xpulp

MODEL_FILE = xpulp.TIMING_FILE
START, COND, MASK = 0x40, 0x80, 0x3F

# Compressed and pseudo-instruction spellings capstone prints, as the base instruction the timing
# table lists.
_ALIAS = {
    "j": "jal", "jr": "jalr", "ret": "jalr", "mv": "add", "li": "addi", "nop": "addi", "not": "xori",
    "neg": "sub", "seqz": "sltiu", "snez": "sltu", "sltz": "slt", "sgtz": "slt", "beqz": "beq",
    "bnez": "bne", "blez": "bge", "bgez": "bge", "bltz": "blt", "bgtz": "blt", "bgt": "blt", "ble": "bge",
    "bgtu": "bltu", "bleu": "bgeu", "addi4spn": "addi", "addi16sp": "addi", "lwsp": "lw", "swsp": "sw",
}
_BRANCHES = {"beq", "bne", "blt", "bge", "bltu", "bgeu"}
_LOADS = {"lb", "lbu", "lh", "lhu", "lw"}
# Instructions whose register operands are all read (no destination).
_NO_DEST = _BRANCHES | {"sb", "sh", "sw", "csrw", "csrs", "csrc", "csrwi", "csrsi", "csrci"}
# Two-address compressed forms: the first operand is read and written.
_TWO_ADDR = {"c.addi", "c.add", "c.slli", "c.srli", "c.srai", "c.andi", "c.sub", "c.xor", "c.or", "c.and",
             "c.addi16sp"}
# Xpulp instructions that read their destination (accumulate).
_XP_READS_RD = {"p.mac", "pv.sdotsp.b", "pv.sdotusp.b"}


@dataclass(frozen=True)
class RiscvModel:
    name: str
    description: str
    load_use_stall: int
    taken_branch_extra: int
    cycles: dict  # mnemonic (base or Xpulp) -> cycles

    @property
    def refill(self) -> int:
        """What the engines add after a taken conditional branch (same role as the Cortex-M P)."""
        return self.taken_branch_extra

    def of(self, mnemonic: str) -> int:
        return self.cycles.get(mnemonic, 1)


@cache
def load_model(path: str | None = None) -> RiscvModel:
    data = yaml.safe_load(Path(path or MODEL_FILE).read_text())
    cyc = {}
    for c in data["classes"]:
        for m in list(c.get("mnemonics", [])) + list(c.get("xpulp", [])):
            cyc[m] = int(c["cycles"])
    return RiscvModel(data["name"], data["description"], int(data["load_use_stall"]),
                      int(data["taken_branch_extra"]), cyc)


def base_mnemonic(mnemonic: str) -> str:
    m = mnemonic.removeprefix("c.")
    if mnemonic in ("c.jal", "c.j"):
        return "jal"
    if mnemonic in ("c.jr", "c.jalr"):
        return "jalr"
    if mnemonic == "c.mv":
        return "add"
    if mnemonic in ("c.li", "c.nop"):
        return "addi"
    return _ALIAS.get(m, m)


@dataclass(frozen=True)
class Decoded:
    addr: int
    size: int
    mnemonic: str  # the timing table's name (base RV32 or Xpulp)
    dest: int | None  # architectural register written by a load (None: not a load)
    reads: frozenset  # architectural registers read


def _capstone():
    import capstone

    md = capstone.Cs(capstone.CS_ARCH_RISCV, capstone.CS_MODE_RISCV32 | capstone.CS_MODE_RISCVC)
    md.detail = True
    return md


def _reg(r: int) -> int:
    from capstone import riscv as R

    return r - R.RISCV_REG_X0


def _decode_plain(md, code: bytes, addr: int) -> tuple[str, int | None, frozenset]:
    from capstone import riscv as R

    insn = next(md.disasm(code, addr, 1), None)
    if insn is None:
        return "unknown", None, frozenset()
    raw = insn.mnemonic
    base = base_mnemonic(raw)
    regs, dest = [], None
    for i, op in enumerate(insn.operands):
        if op.type == R.RISCV_OP_REG:
            regs.append((i, _reg(op.reg)))
        elif op.type == R.RISCV_OP_MEM and op.mem.base:
            regs.append((i, _reg(op.mem.base)))
    if raw == "ret":
        reads = {1}
    elif base in _NO_DEST or raw in ("c.jr", "c.jalr", "jr") or raw in _TWO_ADDR:
        reads = {r for _, r in regs}
    else:
        reads = {r for i, r in regs if i > 0}
        if base in _LOADS and regs:
            dest = regs[0][1]
    if base in _LOADS and raw in ("c.lw", "c.lwsp") and regs:
        dest = regs[0][1]
    return base, dest, frozenset(reads)


def decode_code(code: bytes, base: int) -> list[Decoded]:
    """Every instruction of a stretch of RV32IMC(+Xpulp) code, in address order."""
    md = _capstone()
    out = []
    for addr, word, size in xpulp.sweep(code, base):
        xp = xpulp.decode(word) if size == 4 else None
        if xp is not None:
            name = xp.name
            dest = xp.rd if name in xpulp.LOAD_SIZES else None
            reads = {xp.rs1}
            if not name.startswith("lp.") and not (name in xpulp.LOAD_SIZES and not xp.reg):
                reads.add(xp.rs2)
            if name in xpulp.STORE_SIZES:
                reads.add(xp.rs2)
            if name in _XP_READS_RD:
                reads.add(xp.rd)
            out.append(Decoded(addr, size, name, dest, frozenset(reads)))
            continue
        off = addr - base
        name, dest, reads = _decode_plain(md, code[off:off + size], addr)
        out.append(Decoded(addr, size, name, dest, reads))
    return out


def costs(insns: list[Decoded], model: RiscvModel) -> list[tuple[int, bool]]:
    """(cycles without the taken-branch extra, conditional flag) of each instruction."""
    out = []
    for k, d in enumerate(insns):
        c = model.of(d.mnemonic)
        if d.dest and k + 1 < len(insns) and d.dest in insns[k + 1].reads:
            c += model.load_use_stall
        out.append((c, d.mnemonic in _BRANCHES))
    return out


def _exec_ranges(elf) -> list[tuple[int, int]]:
    from elftools.elf.constants import SH_FLAGS

    return [(s["sh_addr"], s["sh_addr"] + s["sh_size"]) for s in elf.iter_sections()
            if s["sh_flags"] & SH_FLAGS.SHF_EXECINSTR and s["sh_size"] and s["sh_type"] == "SHT_PROGBITS"]


def code_of(elf_path) -> list[tuple[int, bytes]]:
    """(address, bytes) of each executable section."""
    from elftools.elf.elffile import ELFFile

    with open(elf_path, "rb") as f:
        elf = ELFFile(f)
        out = []
        for s in elf.iter_sections():
            if (s["sh_addr"], s["sh_addr"] + s["sh_size"]) in _exec_ranges(elf):
                out.append((s["sh_addr"], s.data()))
    return out


def cost_table(elf_path) -> tuple[int, bytes]:
    """(base address, one byte per halfword) over the ELF's code, cached per file version."""
    st = Path(elf_path).stat()
    return _cached_table(str(elf_path), st.st_mtime_ns, st.st_size)


@lru_cache(maxsize=8)
def _cached_table(elf_path: str, mtime_ns: int, size: int) -> tuple[int, bytes]:
    return build_table(code_of(elf_path), load_model())


def build_table(code: list[tuple[int, bytes]], model: RiscvModel) -> tuple[int, bytes]:
    if not code:
        return 0, b""
    base = min(a for a, _ in code) & ~1
    top = max(a + len(b) for a, b in code)
    table = bytearray((top - base + 1) // 2)
    for addr, data in code:
        insns = decode_code(data, addr)
        for d, (c, cond) in zip(insns, costs(insns, model)):
            table[(d.addr - base) // 2] = START | (COND if cond else 0) | min(c, MASK)
    return base, bytes(table)


class TableBlocks:
    """Per-block (instructions, cycles, fall-through if the block ends in a conditional branch)
    from the cost table, for an engine that reports executed blocks by address and size. Addresses
    outside the table (e.g. emulation stubs) cost nothing and are not instructions."""

    def __init__(self, base: int, table: bytes):
        self.base, self.table = base, table

    def block(self, addr: int, size: int) -> tuple[int, int, int]:
        t, base = self.table, self.base
        n = cyc = 0
        last = 0
        for a in range(addr, addr + size, 2):
            i = (a - base) >> 1
            if 0 <= i < len(t) and t[i] & START:
                n += 1
                cyc += t[i] & MASK
                last = t[i]
        return n, cyc, (addr + size) if last & COND else 0
