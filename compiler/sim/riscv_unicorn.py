"""Unicorn (PyPI) as a firmware simulator for the RV32 boards, in process.

The ELF's loadable segments go into the board's memory map; the console is an MMIO page at the
board's console base (bytes written to ``data_offset`` are console output, ``status_offset``
reads ``status_idle``). Instructions and estimated RI5CY cycles are counted per executed block
(UC_HOOK_BLOCK) from the cost table of ``riscv_cycles`` — the same table the QEMU plugin reads —
and recorded at each entry of ``mcuc_port_cycles``. The firmware exits through RISC-V
semihosting (slli/ebreak/srai), which Unicorn delivers as a breakpoint interrupt.

Boards whose ISA lists ``xpulp`` get the Xpulp subset emulated: by load-time rewriting into plain
RV32IM stubs (``riscv_xpulp.Rewriter``, fast) when the code has only the patterns it supports,
else by the illegal-instruction trap emulator of ``xpulp.py`` (slow, exact; counted instruction by
instruction, which cross-checks the block counts of the rewrite).
"""

from __future__ import annotations

import ctypes

from ..errors import McucError
from . import riscv_cycles
from .firmware import MARKER, EngineRun, Firmware
from .unicorn_run import emulate, map_and_load

EXCP_ILLEGAL, EXCP_BREAKPOINT = 2, 3
SYS_EXIT = 0x18
ADP_STOPPED_APPLICATION_EXIT = 0x20026
HOOK_BLOCK_CFUNC = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint32, ctypes.c_void_p)


def is_riscv(board) -> bool:
    """Whether a board's simulators describe a RISC-V core (data, never the board's name)."""
    s = board.simulators
    return (s.unicorn is not None and s.unicorn.arch == "riscv") or \
        (s.qemu is not None and s.qemu.arch.startswith("riscv"))


def _page(v: int, up: bool = False) -> int:
    return (v + 0xFFF) & ~0xFFF if up else v & ~0xFFF


def setup(fw: Firmware):
    """A Unicorn RV32 machine with the firmware loaded (no blob, no hooks): (uc, code regions)."""
    import unicorn

    u = fw.board.simulators.unicorn
    uc = unicorn.Uc(unicorn.UC_ARCH_RISCV, unicorn.UC_MODE_RISCV32)
    map_and_load(uc, u.memory_map, fw.elf)
    return uc, riscv_cycles.code_of(fw.elf)


def run(fw: Firmware, blob: bytes, *, timeout: float = 300, xpulp_mode: str = "auto") -> EngineRun:
    """``xpulp_mode``: 'auto' (rewrite when supported, else trap), 'rewrite' or 'trap'."""
    import unicorn
    from unicorn import riscv_const as R

    u = fw.board.simulators.unicorn
    con = fw.board.console
    if u is None:
        raise McucError(f"board {fw.board.name!r} has no Unicorn memory map")
    if con is None or con.base is None or con.data_offset is None or con.status_offset is None:
        raise McucError(f"board {fw.board.name!r}: Unicorn needs the console's base, data_offset and status_offset")
    uc, code = setup(fw)
    uc.mem_write(fw.symbols["mcuc_input_blob"], blob)

    model = riscv_cycles.load_model()
    base, table = riscv_cycles.cost_table(fw.elf)
    blocks_of = riscv_cycles.TableBlocks(base, table)
    marker = fw.symbols[MARKER]
    st = {"exit": None, "fault": None}
    marks: list[tuple[int, int]] = []
    out = bytearray()
    refill = model.refill
    blocks: dict[tuple[int, int], tuple[int, int, int]] = {}
    insns = cyc = pending = 0

    def on_block(handle, addr, size, key):
        nonlocal insns, cyc, pending
        b = blocks.get((addr, size))
        if b is None:
            b = blocks[(addr, size)] = blocks_of.block(addr, size)
        if pending and addr != pending:
            cyc += refill
        if b[0]:  # blocks without instructions (emulation stubs) leave a pending branch alone
            pending = b[2]
        if addr == marker:
            marks.append((insns, cyc))
        insns += b[0]
        cyc += b[1]

    io_base = _page(con.base)
    uart_data, uart_status, idle = con.base + con.data_offset, con.base + con.status_offset, con.status_idle or 0

    def io_read(uc_, offset, size, _):
        return idle if io_base + offset == uart_status else 0

    def io_write(uc_, offset, size, value, _):
        if io_base + offset == uart_data:
            out.append(value & 0xFF)

    uc.mmio_map(io_base, 0x1000, io_read, None, io_write, None)

    trap = None
    if "xpulp" in fw.board.isa:
        from . import riscv_xpulp, xpulp

        rw = riscv_xpulp.Rewriter(code, [(_page(m.origin), _page(m.size, up=True)) for m in u.memory_map])
        if xpulp_mode == "rewrite" and rw.unsupported:
            raise McucError(f"unicorn: the Xpulp rewrite does not support this code ({rw.unsupported})")
        if xpulp_mode != "trap" and not rw.unsupported:
            rw.install(uc)
        else:
            trap = xpulp.XpulpEmulator(uc, code, on_fault=lambda m: st.__setitem__("fault", m))

    def on_intr(uc_, intno, _):
        if intno == EXCP_ILLEGAL and trap is not None:
            return  # the trap emulator's own hook handles it
        st["fault"] = st["fault"] or f"exception {intno} at pc=0x{uc_.reg_read(R.UC_RISCV_REG_PC):08x}"
        uc_.emu_stop()

    def on_semihost(uc_, address, size, _):
        # Unicorn 2.1.4 reports ebreak as an invalid instruction instead of an interrupt: the
        # semihosting call is answered just before its ebreak executes.
        if uc_.reg_read(R.UC_RISCV_REG_A0) == SYS_EXIT:
            st["exit"] = 0 if uc_.reg_read(R.UC_RISCV_REG_A1) == ADP_STOPPED_APPLICATION_EXIT else 1
        else:
            st["fault"] = st["fault"] or f"unsupported semihosting call {uc_.reg_read(R.UC_RISCV_REG_A0)}"
        uc_.emu_stop()

    for addr in semihosting_calls(code):
        uc.hook_add(unicorn.UC_HOOK_CODE, on_semihost, begin=addr, end=addr)

    # Only blocks in the firmware's code reach Python: emulation stubs are neither instructions
    # nor cycles, and skipping them keeps their cost off the hot path.
    lo = min(b for b, _ in code)
    hi = max(b + len(d) for b, d in code) - 1
    raw_add = getattr(uc, "_Uc__do_hook_add", None)
    if trap is not None:
        # The trap emulator's branch back at a loop end (a PC write in a code hook) abandons a
        # block the block hook has already counted: count instruction by instruction instead
        # (slower, exact), which also cross-checks the rewrite's block counts.
        def on_insn(uc_, addr, size, _):
            # A loop end the trap emulator's hook (registered first) has just sent back to the
            # loop start does not execute.
            if uc_.reg_read(R.UC_RISCV_REG_PC) == addr:
                on_block(None, addr, size, None)

        uc.hook_add(unicorn.UC_HOOK_CODE, on_insn, begin=lo, end=hi)
    elif raw_add is not None:
        block_cb = HOOK_BLOCK_CFUNC(on_block)
        raw_add(unicorn.UC_HOOK_BLOCK, block_cb, lo, hi)
    else:
        uc.hook_add(unicorn.UC_HOOK_BLOCK, lambda uc_, a, s, d: on_block(None, a, s, None), begin=lo, end=hi)
    uc.hook_add(unicorn.UC_HOOK_INTR, on_intr)

    entry = fw.symbols["mcuc_start"]
    text, secs = emulate(uc, entry, pc_reg=R.UC_RISCV_REG_PC, out=out, st=st, timeout=timeout)
    return EngineRun(text, insns, cyc, marks, secs)


def semihosting_calls(code) -> list[int]:
    """Addresses of the ebreak of every semihosting trap (slli x0,x0,0x1f; ebreak; srai x0,x0,7)."""
    import struct

    seq = struct.pack("<III", 0x01F01013, 0x00100073, 0x40705013)
    out = []
    for base, data in code:
        i = data.find(seq)
        while i >= 0:
            out.append(base + i + 4)
            i = data.find(seq, i + 2)
    return out

