"""Fast Xpulp emulation for Unicorn: load-time rewriting into plain RV32IM stubs.

Trapping every Xpulp word (``xpulp.XpulpEmulator``) costs ~9 us per instruction in Python, far too
slow for whole networks. Instead, before the firmware runs, every Xpulp word at address A is
replaced by ``jal x0, stub_A``; the stub, generated here in plain RV32IM, has the same effect on
registers and memory as ``xpulp.execute`` (the semantic model the unit tests check) and ends with
``jal x0, A + 4``. Everything then runs as translated code inside Unicorn, with no Python per
Xpulp instruction.

- Temporaries: a stub saves the registers it borrows (never rd, rs1 or rs2 of the instruction)
  to a scratch page mapped at address 0 and addressed as ``offset(x0)``, and restores them.
- Hardware loops: ``lp.setup``/``lp.setupi``/``lp.count(i)`` stubs store the loop registers in the
  scratch page. Every loop end E is a PC-relative constant of its setup, so the last body
  instruction (at E - 4) is rewritten too: its stub does the instruction's work, then the loop
  logic of ``LoopState.at(E)`` (loop 0 first; count >= 2: count down and jump to the start;
  count 1: count down and fall through) with the start addresses known from the setups.
- Counting: the cost table comes from the original ELF, so the site A is counted as the Xpulp
  instruction with its RI5CY cost, exactly once; stubs lie outside the table and outside the
  block hook's range, so they are neither instructions nor cycles. The branch back of a loop
  costs nothing, as the RI5CY's zero-overhead loops.

What it does not take (``unsupported`` says why, and the runner falls back to trapping): the long
loop forms (``lp.starti``/``lp.endi``, whose start and end are set apart), a loop end whose last
body instruction is compressed or PC-relative, or loops set up with different starts for one end.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import xpulp

SCRATCH = 0x0
SAVE = 0x100  # + 4 * register
LOOP = 0x200  # + 16 * L: start, end, count
_TEMPS = (5, 6, 7, 28, 29, 30, 31, 10, 11, 12, 13, 14, 15, 16, 17, 8, 9, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 1)
_LOADS = {"p.lb": 0, "p.lh": 1, "p.lw": 2, "p.lbu": 4, "p.lhu": 5}
_STORES = {"p.sb": 0, "p.sh": 1, "p.sw": 2}
_PC_RELATIVE = {0x17, 0x6F, 0x67, 0x63}  # auipc, jal, jalr, branch


# ---- a small RV32IM assembler -------------------------------------------------------------------

def _r(f7, rs2, rs1, f3, rd, op=0x33):
    return (f7 << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op


def _i(imm, rs1, f3, rd, op=0x13):
    return ((imm & 0xFFF) << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op


def _s(imm, rs2, rs1, f3):
    return (((imm >> 5) & 0x7F) << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | ((imm & 0x1F) << 7) | 0x23


def _b(off, rs1, rs2, f3):
    return ((((off >> 12) & 1) << 31) | (((off >> 5) & 0x3F) << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12)
            | (((off >> 1) & 0xF) << 8) | (((off >> 11) & 1) << 7) | 0x63)


def jal(off, rd=0):
    if not -(1 << 20) <= off < (1 << 20) or off & 1:
        raise ValueError(f"jal offset {off} out of range")
    return ((((off >> 20) & 1) << 31) | (((off >> 1) & 0x3FF) << 21) | (((off >> 11) & 1) << 20)
            | (((off >> 12) & 0xFF) << 12) | (rd << 7) | 0x6F)


def addi(rd, rs1, imm):
    return _i(imm, rs1, 0, rd)


def mv(rd, rs):
    return addi(rd, rs, 0)


def li(rd, v) -> list[int]:
    v &= 0xFFFFFFFF
    s = v - (1 << 32) if v & 0x80000000 else v
    if -2048 <= s < 2048:
        return [addi(rd, 0, s)]
    lo = ((v & 0xFFF) ^ 0x800) - 0x800
    hi = ((v - lo) >> 12) & 0xFFFFF
    return [(hi << 12) | (rd << 7) | 0x37, addi(rd, rd, lo)]


def sw0(rs, addr):  # sw rs, addr(x0)
    return _s(addr, rs, 0, 2)


def lw0(rd, addr):  # lw rd, addr(x0)
    return _i(addr, 0, 2, rd, 0x03)


class _Code:
    """A stub being assembled: words, labels and branches resolved once it is complete."""

    def __init__(self):
        self.items: list = []
        self.labels: dict[str, int] = {}

    def emit(self, *words):
        for w in words:
            self.items.extend(w if isinstance(w, list) else [w])

    def label(self, name):
        self.labels[name] = len(self.items)

    def branch(self, f3, rs1, rs2, label):
        self.items.append(("b", f3, rs1, rs2, label))

    def jump(self, target):
        self.items.append(("j", target))

    def assemble(self, base: int) -> bytes:
        out = bytearray()
        for k, it in enumerate(self.items):
            pc = base + 4 * k
            if isinstance(it, int):
                w = it
            elif it[0] == "b":
                w = _b(4 * self.labels[it[4]] - 4 * k, it[2], it[3], it[1])
            else:
                w = jal(it[1] - pc)
            out += (w & 0xFFFFFFFF).to_bytes(4, "little")
        return bytes(out)


def _temps(n, *avoid):
    t = [r for r in _TEMPS if r not in avoid][:n]
    return t


def emulate(c: _Code, ins: xpulp.Insn, pc: int) -> None:
    """Append plain RV32IM with the effect of ``xpulp.execute(ins, pc, ...)`` to ``c``."""
    n = ins.name
    rd, rs1, rs2 = ins.rd, ins.rs1, ins.rs2
    if n in ("pv.sdotsp.b", "pv.sdotusp.b", "pv.dotsp.b"):
        t1, t2, t3 = _temps(3, rd, rs1, rs2)
        c.emit(sw0(t1, SAVE + 4 * t1), sw0(t2, SAVE + 4 * t2), sw0(t3, SAVE + 4 * t3))
        c.emit(mv(t3, rd) if n != "pv.dotsp.b" else mv(t3, 0))
        for lane in range(4):
            sh = 24 - 8 * lane
            src = rs1
            if sh:
                c.emit(_i(sh, rs1, 1, t1))  # slli
                src = t1
            c.emit(_i(24 | (0 if n == "pv.sdotusp.b" else 0x400), src, 5, t1))  # srli / srai
            src = rs2
            if sh:
                c.emit(_i(sh, rs2, 1, t2))
                src = t2
            c.emit(_i(24 | 0x400, src, 5, t2))
            c.emit(_r(1, t2, t1, 0, t1), _r(0, t1, t3, 0, t3))  # mul, add
        c.emit(mv(rd, t3))
        c.emit(lw0(t1, SAVE + 4 * t1), lw0(t2, SAVE + 4 * t2), lw0(t3, SAVE + 4 * t3))
    elif n == "pv.add.b":
        t1, t2, t3 = _temps(3, rd, rs1, rs2)
        c.emit(sw0(t1, SAVE + 4 * t1), sw0(t2, SAVE + 4 * t2), sw0(t3, SAVE + 4 * t3))
        c.emit(li(t3, 0x7F7F7F7F), _r(0, t3, rs1, 7, t1), _r(0, t3, rs2, 7, t2), _r(0, t2, t1, 0, t1))
        c.emit(_r(0, rs2, rs1, 4, t2), li(t3, 0x80808080), _r(0, t3, t2, 7, t2), _r(0, t2, t1, 4, t1))
        c.emit(mv(rd, t1))
        c.emit(lw0(t1, SAVE + 4 * t1), lw0(t2, SAVE + 4 * t2), lw0(t3, SAVE + 4 * t3))
    elif n == "p.mac":
        (t1,) = _temps(1, rd, rs1, rs2)
        c.emit(sw0(t1, SAVE + 4 * t1), _r(1, rs2, rs1, 0, t1), _r(0, t1, rd, 0, rd), lw0(t1, SAVE + 4 * t1))
    elif n in ("p.min", "p.max", "p.minu", "p.maxu"):
        (t1,) = _temps(1, rd, rs1, rs2)
        keep = {"p.min": 4, "p.max": 5, "p.minu": 6, "p.maxu": 7}[n]  # blt, bge, bltu, bgeu: keep rs1
        c.emit(sw0(t1, SAVE + 4 * t1), mv(t1, rs1))
        c.branch(keep, rs1, rs2, "keep")
        c.emit(mv(t1, rs2))
        c.label("keep")
        c.emit(mv(rd, t1), lw0(t1, SAVE + 4 * t1))
    elif n in ("p.clip", "p.clipu"):
        lo, hi = xpulp._clip_bounds(ins.imm)
        if n == "p.clipu":
            lo = 0
        t1, t2 = _temps(2, rd, rs1)
        c.emit(sw0(t1, SAVE + 4 * t1), sw0(t2, SAVE + 4 * t2), mv(t1, rs1), li(t2, hi))
        c.branch(5, t2, t1, "le_hi")  # bge hi, x
        c.emit(mv(t1, t2))
        c.label("le_hi")
        c.emit(li(t2, lo))
        c.branch(5, t1, t2, "ge_lo")  # bge x, lo
        c.emit(mv(t1, t2))
        c.label("ge_lo")
        c.emit(mv(rd, t1), lw0(t1, SAVE + 4 * t1), lw0(t2, SAVE + 4 * t2))
    elif n in _LOADS:
        (t1,) = _temps(1, rd, rs1, rs2)
        c.emit(sw0(t1, SAVE + 4 * t1), mv(t1, rs1))
        c.emit(_r(0, rs2, rs1, 0, rs1) if ins.reg else addi(rs1, rs1, ins.imm))
        c.emit(_i(0, t1, _LOADS[n], rd, 0x03), lw0(t1, SAVE + 4 * t1))
    elif n in _STORES:
        c.emit(_s(0, rs2, rs1, _STORES[n]), addi(rs1, rs1, ins.imm))
    elif n in ("lp.setup", "lp.setupi", "lp.count", "lp.counti"):
        L = LOOP + 16 * ins.loop
        (t1,) = _temps(1, rs1)
        c.emit(sw0(t1, SAVE + 4 * t1))
        if n == "lp.setup" or n == "lp.count":
            c.emit(sw0(rs1, L + 8))
        else:
            c.emit(li(t1, ins.imm), sw0(t1, L + 8))
        if n in ("lp.setup", "lp.setupi"):
            end = pc + (ins.imm if n == "lp.setup" else ins.offset)
            c.emit(li(t1, pc + 4), sw0(t1, L), li(t1, end), sw0(t1, L + 4))
        c.emit(lw0(t1, SAVE + 4 * t1))
    else:
        raise ValueError(f"no rewrite for {n}")


def loop_logic(c: _Code, end: int, starts: dict[int, int]) -> None:
    """``LoopState.at(end)`` in RV32IM, for the loops (index -> static start) that can end here."""
    t1, t2 = 5, 6
    c.emit(sw0(t1, SAVE + 4 * t1), sw0(t2, SAVE + 4 * t2))
    for L in (0, 1):
        if L not in starts:
            continue
        base = LOOP + 16 * L
        nxt = f"next{L}"
        c.emit(lw0(t1, base + 4), li(t2, end))
        c.branch(1, t1, t2, nxt)  # bne: another end
        c.emit(lw0(t1, base + 8))
        c.branch(0, t1, 0, nxt)  # beq count, 0: inactive
        c.emit(addi(t1, t1, -1), sw0(t1, base + 8))
        c.branch(0, t1, 0, nxt)  # counted down to 0: fall through (this loop is done)
        c.emit(lw0(t1, SAVE + 4 * t1), lw0(t2, SAVE + 4 * t2))
        c.jump(starts[L])
        c.label(nxt)
    c.emit(lw0(t1, SAVE + 4 * t1), lw0(t2, SAVE + 4 * t2))
    c.jump(end)


@dataclass
class Site:
    addr: int
    word: int
    insn: xpulp.Insn | None  # None: a plain instruction moved because it ends a loop body
    loop_end: int | None = None


class Rewriter:
    """Plans the rewrite of ``code`` ([(base, bytes)]); ``mapped`` lists the (origin, size) of the
    memory the machine already maps, so that the scratch page and the stubs go where nothing is."""

    def __init__(self, code, mapped):
        self.unsupported: str | None = None
        self.sites: dict[int, Site] = {}
        self.starts: dict[int, dict[int, int]] = {}  # loop end -> {loop index: start}
        self.code = [(b, bytes(d)) for b, d in code]
        self.mapped = list(mapped)
        self.stub_base = 0
        self.blob = b""
        self.patches: list[tuple[int, int]] = []
        try:
            self._plan()
        except _Unsupported as e:
            self.unsupported = str(e)

    def _plan(self):
        words: dict[int, tuple[int, int]] = {}
        for base, data in self.code:
            for addr, word, size in xpulp.sweep(data, base):
                words[addr] = (word, size)
                ins = xpulp.decode(word) if size == 4 else None
                if ins is None:
                    continue
                if ins.name in ("lp.starti", "lp.endi"):
                    raise _Unsupported(f"{ins.name} at 0x{addr:08x} (long loop form)")
                self.sites[addr] = Site(addr, word, ins)
                if ins.name in ("lp.setup", "lp.setupi"):
                    end = addr + (ins.imm if ins.name == "lp.setup" else ins.offset)
                    prev = self.starts.setdefault(end, {}).get(ins.loop)
                    if prev is not None and prev != addr + 4:
                        raise _Unsupported(f"loop {ins.loop} ending at 0x{end:08x} has two starts")
                    self.starts[end][ins.loop] = addr + 4
        for end in self.starts:
            last = end - 4
            if last not in words or words[last][1] != 4:
                raise _Unsupported(f"the loop ending at 0x{end:08x} has no 4-byte last instruction")
            site = self.sites.get(last)
            if site is None:
                word = words[last][0]
                if word & 0x7F in _PC_RELATIVE:
                    raise _Unsupported(f"the loop ending at 0x{end:08x} ends with a PC-relative instruction")
                site = self.sites[last] = Site(last, word, None)
            site.loop_end = end
        if not self.sites:
            return
        lo = min(b for b, _ in self.code)
        hi = max(b + len(d) for b, d in self.code)
        # Stubs: the first free 64 KB-aligned place after the code, within jal's +-1 MB.
        size = 0
        stubs = []
        for addr in sorted(self.sites):
            stubs.append(self._stub(self.sites[addr]))
        size = sum(4 * len(s.items) for s in stubs)
        span = (size + 0xFFF) & ~0xFFF
        base = (hi + 0xFFFF) & ~0xFFFF
        while self._overlaps(base, span):
            base += 0x10000
        if base + span - lo > (1 << 20) - 4:
            raise _Unsupported("no free memory within jal range of the code for the stubs")
        if self._overlaps(SCRATCH, 0x1000):
            raise _Unsupported("the scratch page at address 0 is taken by the board's memory map")
        self.stub_base = base
        out = bytearray()
        for site, stub in zip(sorted(self.sites), stubs):
            at = base + len(out)
            out += stub.assemble(at)
            self.patches.append((site, jal(at - site)))
        self.blob = bytes(out)
        self.span = span

    def _overlaps(self, a, n):
        return any(a < o + s and o < a + n for o, s in self.mapped)

    def _stub(self, site: Site) -> _Code:
        c = _Code()
        if site.insn is not None:
            emulate(c, site.insn, site.addr)
        else:
            c.emit(site.word)
        if site.loop_end is not None:
            loop_logic(c, site.loop_end, self.starts[site.loop_end])
        else:
            c.jump(site.addr + 4)
        return c

    def code_range(self) -> tuple[int, int]:
        lo = min(b for b, _ in self.code)
        hi = max(b + len(d) for b, d in self.code)
        return lo, hi

    def install(self, uc) -> None:
        """Map the scratch page and the stubs and patch the sites (after the ELF is loaded)."""
        if self.unsupported:
            raise ValueError(self.unsupported)
        if not self.sites:
            return
        uc.mem_map(SCRATCH, 0x1000)
        uc.mem_map(self.stub_base, self.span)
        uc.mem_write(self.stub_base, self.blob)
        for addr, word in self.patches:
            uc.mem_write(addr, word.to_bytes(4, "little"))


class _Unsupported(Exception):
    pass
