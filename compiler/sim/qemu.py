"""QEMU (qemu-system-arm) as a firmware simulator, with mcuc's TCG plugin counting instructions
and estimated cycles.

The plugin (qemu_plugin/mcuc_count.c) is compiled once with the host C compiler into the user
cache. The input blob goes in with ``-device loader`` before reset; the console UART is the
board's ``serial_index``-th ``-serial``; the firmware exits through semihosting SYS_EXIT.
``-icount shift=0`` makes QEMU's own clocks count instructions, so a run is deterministic.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from ..errors import McucError
from . import cycles
from .firmware import MARKER, EngineRun, Firmware, last_line

QEMU = "qemu-system-arm"  # the default; a board's simulators.qemu.arch selects qemu-system-<arch>
PLUGIN_SRC = Path(__file__).with_name("qemu_plugin") / "mcuc_count.c"


def binary(board=None) -> str:
    q = board.simulators.qemu if board is not None else None
    return f"qemu-system-{q.arch}" if q is not None else QEMU


def available(board=None) -> bool:
    return shutil.which(binary(board)) is not None


def timing(board):
    """(cost-table function of an ELF, refill after a taken branch) of the board's core timing
    model: RI5CY for RISC-V boards (riscv_cycles.py), else Cortex-M4 (cycles.py)."""
    from . import riscv_cycles, riscv_unicorn

    if riscv_unicorn.is_riscv(board):
        return riscv_cycles.cost_table, riscv_cycles.load_model().refill
    return cycles.cost_table, cycles.load_model().refill


def cache_dir() -> Path:
    d = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mcuc"
    d.mkdir(parents=True, exist_ok=True)
    return d


def plugin_path() -> Path:
    """The compiled plugin, rebuilt when its source changes."""
    src = PLUGIN_SRC.read_bytes()
    out = cache_dir() / f"mcuc_count-{hashlib.sha256(src).hexdigest()[:12]}.so"
    if out.is_file():
        return out
    cc = next((c for c in (os.environ.get("CC"), "cc", "gcc", "clang") if c and shutil.which(c)), None)
    if cc is None:
        raise McucError("QEMU needs a host C compiler to build mcuc's instruction-counting plugin")
    tmp = out.with_name(out.name + f".{os.getpid()}.tmp")
    r = subprocess.run([cc, "-O2", "-shared", "-fPIC", "-o", str(tmp), str(PLUGIN_SRC)], capture_output=True, text=True)
    if r.returncode != 0:
        raise McucError(f"cannot build the QEMU plugin: {r.stderr.strip().splitlines()[0] if r.stderr.strip() else 'failed'}")
    os.replace(tmp, out)
    return out


def check_memory(fw: Firmware, blob_len: int) -> None:
    """A stand-in machine (another chip of the family) must hold the image, the RAM it uses and
    the blob."""
    q = fw.board.simulators.qemu
    if not q.memories:
        return
    need = [(fw.symbols.get("_estack", 0) - 1, "RAM (stack top)"),
            (fw.symbols["mcuc_input_blob"] + blob_len - 1, "flash (image + input blob)")]
    for addr, what in need:
        if not any(m.origin <= addr < m.origin + m.size for m in q.memories):
            raise McucError(f"qemu: {q.machine} ({q.stands_in or q.machine}) has no memory at 0x{addr:08x} for the "
                            f"{what} of {fw.board.name}'s firmware; use --sim unicorn")


def command(fw: Firmware, blob_path: Path, table_path: Path, out_path: Path, *, icount: bool = True) -> list[str]:
    q = fw.board.simulators.qemu
    refill = timing(fw.board)[1]
    marker = fw.symbols[MARKER] & ~1
    cmd = [binary(fw.board), "-M", q.machine]
    if q.cpu:
        cmd += ["-cpu", q.cpu]
    cmd += ["-display", "none", "-monitor", "none", "-nodefaults"]
    cmd += ["-serial", "null"] * q.serial_index + ["-serial", "stdio"]
    cmd += ["-semihosting-config", "enable=on,target=native"]
    if icount:
        cmd += ["-icount", "shift=0"]
    cmd += ["-kernel", str(fw.elf),
            "-device", f"loader,file={blob_path},addr=0x{fw.symbols['mcuc_input_blob']:x},force-raw=on",
            "-plugin", f"{plugin_path()},table={table_path},marker=0x{marker:x},refill={refill},out={out_path}"]
    return cmd + list(q.args)


def run(fw: Firmware, blob: bytes, *, timeout: float = 300) -> EngineRun:
    if not available(fw.board):
        raise McucError(f"{binary(fw.board)} is not installed")
    if fw.board.simulators.qemu is None:
        raise McucError(f"board {fw.board.name!r} has no QEMU machine")
    check_memory(fw, len(blob))
    with tempfile.TemporaryDirectory(prefix="mcuc-qemu-") as tmp:
        t = Path(tmp)
        (t / "blob.bin").write_bytes(blob)
        base, table = timing(fw.board)[0](fw.elf)
        cycles.write_table(t / "costs.bin", base, table)
        cmd = command(fw, t / "blob.bin", t / "costs.bin", t / "counts.txt")
        t0 = time.perf_counter()
        try:
            r = subprocess.run(cmd, capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            out = (e.stdout or b"").decode("utf-8", "replace")
            raise McucError(f"qemu: the firmware did not finish within {timeout:.0f} s (hung?); "
                            f"last output line: {last_line(out)!r}") from None
        secs = time.perf_counter() - t0
        console = r.stdout.decode("utf-8", "replace").replace("\r", "")
        if r.returncode != 0:
            err = r.stderr.decode("utf-8", "replace").strip()
            raise McucError(f"qemu: the firmware failed (qemu exit status {r.returncode})"
                            + (f" ({err.splitlines()[-1]})" if err else "")
                            + f"; last output line: {last_line(console)!r}")
        try:
            lines = (t / "counts.txt").read_text().splitlines()
        except OSError:
            raise McucError("qemu: the counting plugin wrote no counts") from None
    total = lines[0].split()
    marks = [(int(a), int(b)) for _, a, b in (ln.split() for ln in lines[1:])]
    return EngineRun(console, int(total[1]), int(total[2]), marks, secs)
