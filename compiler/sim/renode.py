"""Renode as a firmware simulator, through the scripts every Cortex-M project carries:
``mcuc.resc`` (load the platform, its overlay, the ELF and the input blob; log the console UART
to a file), ``mcuc_overlay.repl`` (what Renode's platform lacks, e.g. DWT) and ``mcuc.robot``
(a renode-test suite that waits for the MCUC_RESULT line, never for a fixed time, and prints
``ExecutedInstructions``).

Renode counts instructions only: its DWT CYCCNT ticks on a virtual clock (instructions /
PerformanceInMips), not on mcuc's cycle model, so Renode runs report no estimated cycles.
Renode is in no package registry these machines reach; this module runs only where ``renode``
and ``renode-test`` are on PATH.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from ..errors import McucError
from .firmware import EngineRun, Firmware, last_line

_INSNS = re.compile(r"MCUC_RENODE instructions=(0x[0-9a-fA-F]+|\d+)")
_RESULT = re.compile(r"MCUC_RENODE (MCUC_RESULT .*)$", re.MULTILINE)
SCRIPTS = ("mcuc.resc", "mcuc.robot", "mcuc_overlay.repl")
# Whether Renode's Cortex-M handles semihosting is platform-dependent: the suite stops at the
# result line instead, and the firmware then sleeps.
SEMIHOST_EXIT = False


def available() -> bool:
    return shutil.which("renode") is not None and shutil.which("renode-test") is not None


def command(robot: Path, blob_addr: int) -> list[str]:
    return ["renode-test", "--variable", f"BLOB_ADDR:0x{blob_addr:08x}", str(robot)]


def parse_output(stdout: str) -> dict:
    """The suite's ``MCUC_RENODE`` lines: executed instructions and the result line; McucError
    when the suite failed before printing them (its last line says why)."""
    m = _INSNS.search(stdout)
    r = _RESULT.search(stdout)
    if not m or not r:
        raise McucError(f"renode: the test suite printed no result; last output line: {last_line(stdout)!r}")
    return {"instructions": int(m.group(1), 0), "result_line": r.group(1).strip()}


def run(fw: Firmware, blob: bytes, *, timeout: float = 600) -> EngineRun:
    if not available():
        raise McucError("renode is not installed (renode and renode-test must be on PATH)")
    project = fw.elf.parent
    missing = [s for s in SCRIPTS if not (project / s).is_file()]
    if missing:
        raise McucError(f"renode: the project lacks {', '.join(missing)} (regenerate it for a board with simulators.renode)")
    with tempfile.TemporaryDirectory(prefix="mcuc-renode-") as tmp:
        t = Path(tmp)
        for s in SCRIPTS:
            shutil.copy(project / s, t / s)
        shutil.copy(fw.elf, t / fw.elf.name)
        (t / "mcuc_input_blob.bin").write_bytes(blob)
        t0 = time.perf_counter()
        try:
            r = subprocess.run(command(t / "mcuc.robot", fw.symbols["mcuc_input_blob"]), cwd=t, capture_output=True,
                               text=True, timeout=timeout + 60)
        except subprocess.TimeoutExpired:
            log = (t / "mcuc_uart.log").read_text(errors="replace") if (t / "mcuc_uart.log").exists() else ""
            raise McucError(f"renode: no result within {timeout:.0f} s; last output line: {last_line(log)!r}") from None
        secs = time.perf_counter() - t0
        console = (t / "mcuc_uart.log").read_text(errors="replace") if (t / "mcuc_uart.log").exists() else ""
    info = parse_output(r.stdout)
    return EngineRun(console.replace("\r", ""), info["instructions"], 0, None, secs)
