"""Cycle estimates from the Cortex-M4 timing model in ``cortex_m4.yaml`` (the one definition).

``cost_table(elf)`` classifies every instruction of an ELF's code once (capstone) and returns a
per-halfword table that both engines read: the QEMU plugin (mcuc_count.c) sums it per translated
block in C, the Unicorn runner per executed block in Python. Rules that depend on execution are
the same in both: a conditional branch adds the refill P when the next executed block does not
start at its fall-through address. Loads pipeline when the instruction before them *in the code*
is a single load or store, so the estimate does not depend on how an engine cuts blocks.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

import yaml

MODEL_FILE = Path(__file__).with_name("cortex_m4.yaml")
START = 0x40  # an instruction starts at this halfword
COND = 0x80  # a conditional branch: + refill when taken
MASK = 0x3F


@dataclass(frozen=True)
class CycleModel:
    name: str
    description: str
    refill: int
    default: int
    pipelining: tuple[str, ...]
    classes: tuple[dict, ...]

    def klass(self, mnemonic: str) -> dict | None:
        for c in self.classes:
            for m in c["mnemonics"]:
                if mnemonic == m or (m.endswith("*") and mnemonic.startswith(m[:-1])):
                    return c
        return None


@cache
def load_model(path: str | None = None) -> CycleModel:
    data = yaml.safe_load(Path(path or MODEL_FILE).read_text())
    return CycleModel(data["name"], data["description"], int(data["refill"]), int(data["default_cycles"]),
                      tuple(data.get("pipelining", [])), tuple(data["classes"]))


def _base_mnemonic(insn) -> str:
    m = insn.mnemonic.split(".")[0]
    # Capstone spells a condition into the mnemonic (beq, popeq); 0 = none, 15 = always.
    if insn.cc not in (0, 15) and not m.startswith("it") and len(m) > 2:
        m = m[:-2]
    return m


def _writes_pc(insn) -> bool:
    from capstone import arm

    if insn.mnemonic.split(".")[0] in ("pop",) or insn.mnemonic.startswith(("pop", "ldm")):
        return any(op.type == arm.ARM_OP_REG and op.reg == arm.ARM_REG_PC for op in insn.operands)
    ops = insn.operands
    return bool(ops) and ops[0].type == arm.ARM_OP_REG and ops[0].reg == arm.ARM_REG_PC and \
        not insn.mnemonic.startswith(("str", "push", "stm", "cmp", "cmn", "tst", "teq"))


def classify(insn, prev_class: str | None, model: CycleModel) -> tuple[int, bool, str]:
    """(cycles without a dynamic refill, conditional-branch flag, class name) of one instruction."""
    base = _base_mnemonic(insn)
    c = model.klass(base)
    name = c["name"] if c else "default"
    cycles = model.default if c is None else int(c["cycles"])
    if c is not None and "pipelined" in c and prev_class in model.pipelining:
        cycles = int(c["pipelined"])
    if c is not None and c.get("per_register"):
        regs = len(insn.operands) - (1 if base.startswith(("ldm", "stm", "vldm", "vstm")) else 0)
        cycles += int(c["per_register"]) * max(0, regs)
    conditional = insn.cc not in (0, 15) and not base.startswith("it")
    refill = c.get("refill") if c else None
    if refill is None and _writes_pc(insn):
        refill = "always"
    cond_flag = False
    if refill == "taken" or (refill == "always" and conditional):
        cond_flag = True
    elif refill == "always":
        cycles += model.refill
    return min(cycles, MASK), cond_flag, name


def _code_ranges(elf) -> list[tuple[int, int]]:
    """[start, end) of Thumb code: executable sections cut by the $t/$d mapping symbols, so that
    literal pools are never decoded as instructions."""
    from elftools.elf.constants import SH_FLAGS
    from elftools.elf.sections import SymbolTableSection

    execs = [(s["sh_addr"], s["sh_addr"] + s["sh_size"]) for s in elf.iter_sections()
             if s["sh_flags"] & SH_FLAGS.SHF_EXECINSTR and s["sh_size"]]
    marks = []
    for sec in elf.iter_sections():
        if isinstance(sec, SymbolTableSection):
            for sym in sec.iter_symbols():
                if sym.name.startswith(("$t", "$d", "$a")):
                    marks.append((sym["st_value"], sym.name[1]))
    out = []
    for lo, hi in execs:
        ms = sorted((a, k) for a, k in marks if lo <= a < hi)
        if not ms:
            out.append((lo, hi))
            continue
        if ms[0][0] > lo:
            ms.insert(0, (lo, "t"))
        for i, (a, k) in enumerate(ms):
            end = ms[i + 1][0] if i + 1 < len(ms) else hi
            if k == "t" and end > a:
                out.append((a, end))
    return out


def cost_table(elf_path, model: CycleModel | None = None) -> tuple[int, bytes]:
    """(base address, one byte per halfword) over the ELF's code; see the module docstring.
    Cached per file version: every session of a run reuses it."""
    if model is not None:
        return _build_table(str(elf_path), model)
    st = Path(elf_path).stat()
    return _cached_table(str(elf_path), st.st_mtime_ns, st.st_size)


@lru_cache(maxsize=8)
def _cached_table(elf_path: str, mtime_ns: int, size: int) -> tuple[int, bytes]:
    return _build_table(elf_path, load_model())


def _build_table(elf_path: str, model: CycleModel) -> tuple[int, bytes]:
    import capstone
    from elftools.elf.elffile import ELFFile

    md = capstone.Cs(capstone.CS_ARCH_ARM, capstone.CS_MODE_THUMB | capstone.CS_MODE_MCLASS)
    md.detail = True
    md.skipdata = True
    with open(elf_path, "rb") as f:
        elf = ELFFile(f)
        ranges = _code_ranges(elf)
        if not ranges:
            return 0, b""
        base = min(lo for lo, _ in ranges) & ~1
        top = max(hi for _, hi in ranges)
        table = bytearray((top - base + 1) // 2)
        for lo, hi in ranges:
            data = _read(elf, lo, hi - lo)
            prev = None
            for insn in md.disasm(data, lo):
                if insn.id == 0:  # skipdata: not an instruction
                    prev = None
                    continue
                cycles, cond, name = classify(insn, prev, model)
                table[(insn.address - base) // 2] = START | (COND if cond else 0) | cycles
                prev = name
    return base, bytes(table)


def _read(elf, addr: int, size: int) -> bytes:
    for seg in elf.iter_segments():
        if seg["p_type"] == "PT_LOAD" and seg["p_vaddr"] <= addr and addr + size <= seg["p_vaddr"] + seg["p_filesz"]:
            off = addr - seg["p_vaddr"]
            return seg.data()[off:off + size]
    for sec in elf.iter_sections():
        if sec["sh_addr"] <= addr and addr + size <= sec["sh_addr"] + sec["sh_size"]:
            off = addr - sec["sh_addr"]
            return sec.data()[off:off + size]
    return b""


def write_table(path, base: int, table: bytes) -> None:
    Path(path).write_bytes(struct.pack("<II", base, len(table)) + bytes(table))


class BlockCosts:
    """Per-block (instructions, cycles, conditional-last, fall-through) for an engine that reports
    executed blocks by address and size (Unicorn), from the same table the QEMU plugin reads."""

    def __init__(self, base: int, table: bytes, refill: int):
        import capstone

        self.base, self.table, self.refill = base, table, refill
        self.md = capstone.Cs(capstone.CS_ARCH_ARM, capstone.CS_MODE_THUMB | capstone.CS_MODE_MCLASS)
        self.cache: dict[tuple[int, int], tuple[int, int, bool, int]] = {}

    def cost_at(self, addr: int) -> int:
        i = (addr - self.base) >> 1
        if addr < self.base or i >= len(self.table):
            return START | 1
        return self.table[i]

    def block(self, addr: int, size: int, code: bytes) -> tuple[int, int, bool, int]:
        key = (addr, size)
        hit = self.cache.get(key)
        if hit is None:
            n = cycles = 0
            last = addr
            last_size = 0
            for a, sz, _, _ in self.md.disasm_lite(code, addr):
                c = self.cost_at(a)
                cycles += c & MASK
                n += 1
                last, last_size = a, sz
            cond = bool(self.cost_at(last) & COND) if n else False
            hit = (n, cycles, cond, last + last_size)
            self.cache[key] = hit
        return hit
