"""Unicorn (PyPI) as a firmware simulator, in process.

The ELF's loadable segments go into the board's memory map; the console UART and the core's
private peripherals (DWT, SCB) are MMIO callbacks: bytes written to the UART's data register are
the console, its status register always reads idle, and DWT CYCCNT reads (and SysTick's current
value) follow the cycle model's count. Instructions are counted per executed block (UC_HOOK_BLOCK) with each block's instructions
decoded once with capstone (UC_HOOK_CODE is never called for Thumb IT instructions, so it would
under-count); cycles come from the same cost table the QEMU plugin reads (cycles.py). The
firmware exits through a semihosting BKPT, which arrives here as an interrupt.
"""

from __future__ import annotations

import ctypes
import time

from ..errors import McucError
from . import cycles
from .firmware import MARKER, EngineRun, Firmware, last_line

PPB_BASE, PPB_SIZE = 0xE0000000, 0x100000
DWT_CYCCNT = 0xE0001004
SYST_RVR, SYST_CVR = 0xE000E014, 0xE000E018
PERIPH_BASE, PERIPH_SIZE = 0x40000000, 0x20000000
SYS_EXIT = 0x18
EXCP_BKPT = 7


HOOK_BLOCK_CFUNC = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint32, ctypes.c_void_p)


def available() -> bool:
    try:
        import unicorn  # noqa: F401
    except ImportError:
        return False
    return True


def _page(v: int, up: bool = False) -> int:
    return (v + 0xFFF) & ~0xFFF if up else v & ~0xFFF


def run(fw: Firmware, blob: bytes, *, timeout: float = 300) -> EngineRun:
    import unicorn
    from unicorn import arm_const as A

    from . import riscv_unicorn

    if riscv_unicorn.is_riscv(fw.board):
        return riscv_unicorn.run(fw, blob, timeout=timeout)
    u = fw.board.simulators.unicorn
    con = fw.board.console
    if u is None:
        raise McucError(f"board {fw.board.name!r} has no Unicorn memory map")
    if con is None or con.base is None or con.data_offset is None or con.status_offset is None:
        raise McucError(f"board {fw.board.name!r}: Unicorn needs the console's base, data_offset and status_offset")
    uc = unicorn.Uc(unicorn.UC_ARCH_ARM, unicorn.UC_MODE_THUMB | unicorn.UC_MODE_MCLASS)
    uc.ctl_set_cpu_model(A.UC_CPU_ARM_CORTEX_M4)
    map_and_load(uc, u.memory_map, fw.elf)
    uc.mem_write(fw.symbols["mcuc_input_blob"], blob)

    model = cycles.load_model()
    base, table = cycles.cost_table(fw.elf)
    costs = cycles.BlockCosts(base, bytes(table), model.refill)
    marker = fw.symbols[MARKER] & ~1
    st = {"exit": None, "fault": None}
    marks: list[tuple[int, int]] = []
    out = bytearray()
    uart_data, uart_status, idle = con.base + con.data_offset, con.base + con.status_offset, con.status_idle or 0
    refill = model.refill
    blocks: dict[int, tuple[int, int, int, int]] = {}  # addr -> (size, insns, cycles, fall-through if cond)
    # The hot path: plain locals in a closure, one dict lookup per executed block.
    insns = cyc = pending = 0

    def new_block(addr, size):
        try:
            n, c, cond, nxt = costs.block(addr, size, bytes(uc.mem_read(addr, size)))
        except Exception as e:  # a raw callback cannot raise: stop and report instead
            st["fault"] = f"cannot decode the block at 0x{addr:08x} ({e})"
            uc.emu_stop()
            n, c, cond, nxt = 0, 0, False, 0
        b = blocks[addr] = (size, n, c, nxt if cond else 0)
        return b

    def on_block(handle, addr, size, key):
        nonlocal insns, cyc, pending
        b = blocks.get(addr)
        if b is None or b[0] != size:
            b = new_block(addr, size)
        if pending and addr != pending:
            cyc += refill
        pending = b[3]
        if addr == marker:
            marks.append((insns, cyc))
        insns += b[1]
        cyc += b[2]

    def periph_read(uc, offset, size, _):
        return idle if PERIPH_BASE + offset == uart_status else 0

    def periph_write(uc, offset, size, value, _):
        if PERIPH_BASE + offset == uart_data:
            out.append(value & 0xFF)

    syst = {"reload": 0xFFFFFF}

    def ppb_read(uc, offset, size, _):
        addr = PPB_BASE + offset
        if addr == DWT_CYCCNT:
            return cyc & 0xFFFFFFFF
        if addr == SYST_CVR:  # SysTick counts down from its reload value on the same clock
            return syst["reload"] - cyc % (syst["reload"] + 1)
        return syst["reload"] if addr == SYST_RVR else 0

    def ppb_write(uc, offset, size, value, _):
        if PPB_BASE + offset == SYST_RVR:
            syst["reload"] = value & 0xFFFFFF

    def on_intr(uc, intno, _):
        if intno == EXCP_BKPT and uc.reg_read(A.UC_ARM_REG_R0) == SYS_EXIT:
            st["exit"] = 0 if uc.reg_read(A.UC_ARM_REG_R1) == 0x20026 else 1
        else:
            st["fault"] = f"exception {intno} at pc=0x{uc.reg_read(A.UC_ARM_REG_PC):08x}"
        uc.emu_stop()

    uc.mmio_map(PERIPH_BASE, PERIPH_SIZE, periph_read, None, periph_write, None)
    uc.mmio_map(PPB_BASE, PPB_SIZE, ppb_read, None, ppb_write, None)
    # The block hook is registered as a raw ctypes callback: unicorn's Python wrapper (exception
    # guard, argument repacking) would double the cost of the one call made per executed block.
    raw_add = getattr(uc, "_Uc__do_hook_add", None)
    if raw_add is not None:
        block_cb = HOOK_BLOCK_CFUNC(on_block)
        raw_add(unicorn.UC_HOOK_BLOCK, block_cb, 1, 0)
    else:
        uc.hook_add(unicorn.UC_HOOK_BLOCK, lambda uc_, a, s, d: on_block(None, a, s, None))
    uc.hook_add(unicorn.UC_HOOK_INTR, on_intr)

    vt = fw.symbols.get("mcuc_vectors", min(m.origin for m in u.memory_map if m.kind == "flash"))
    sp = int.from_bytes(uc.mem_read(vt, 4), "little")
    pc = int.from_bytes(uc.mem_read(vt + 4, 4), "little")
    uc.reg_write(A.UC_ARM_REG_SP, sp)
    text, secs = emulate(uc, pc | 1, pc_reg=A.UC_ARM_REG_PC, out=out, st=st, timeout=timeout)
    return EngineRun(text, insns, cyc, marks, secs)


def map_and_load(uc, memory_map, elf) -> None:
    """Map the board's memories (page-aligned) and write the ELF's loadable segments at their
    load addresses, as a flash programmer would."""
    from elftools.elf.elffile import ELFFile

    for m in memory_map:
        uc.mem_map(_page(m.origin), _page(m.size, up=True))
    with open(elf, "rb") as f:
        for seg in ELFFile(f).iter_segments():
            if seg["p_type"] == "PT_LOAD" and seg["p_filesz"]:
                uc.mem_write(seg["p_paddr"], seg.data())


def emulate(uc, start: int, *, pc_reg: int, out: bytearray, st: dict, timeout: float) -> tuple[str, float]:
    """Run ``uc`` from ``start`` until the firmware exits: (console text, seconds). The hooks
    record a fault in ``st["fault"]`` and the exit status in ``st["exit"]``; a crash, a fault or
    no exit within ``timeout`` is a one-line McucError quoting the last console line."""
    import unicorn

    t0 = time.perf_counter()
    try:
        uc.emu_start(start, 0xFFFFFFFF, timeout=int(timeout * 1e6))
    except unicorn.UcError as e:
        text = out.decode("utf-8", "replace")
        raise McucError(f"unicorn: the firmware crashed ({e}) at pc=0x{uc.reg_read(pc_reg):08x}; "
                        f"last output line: {last_line(text)!r}") from None
    secs = time.perf_counter() - t0
    text = out.decode("utf-8", "replace")
    if st["fault"]:
        raise McucError(f"unicorn: the firmware crashed ({st['fault']}); last output line: {last_line(text)!r}")
    if st["exit"] is None:
        raise McucError(f"unicorn: the firmware did not finish within {timeout:.0f} s (hung?); "
                        f"last output line: {last_line(text)!r}")
    return text, secs
