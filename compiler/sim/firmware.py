"""Firmware runs shared by every simulator: build the ELF, pack the input blob, read the
console, and turn the engine's marker snapshots into per-layer instructions and cycles.

The firmware (runtime_c/port/cortex-m/mcuc_port.c) reads its samples from the input blob, a
flash region after the image that the simulator fills before reset, prints outputs as
``MCUC_OUT <hex>`` lines and ends with ``MCUC_RESULT``. Every engine records (instructions,
cycles) each time ``mcuc_port_cycles`` is entered: per sample that is the harness's start mark,
a begin and an end mark around each layer with code, and the harness's end mark.
"""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..boards import Board, load_board
from ..codegen import toolchain
from ..errors import McucError
from .host import _first_error, _manifest, _samples
from .protocol import decode_outputs

BLOB_MAGIC = 0x4955434D
BLOB_OVERHEAD = 16 + 4  # the blob header, then the stream's sample count
FLAG_SEMIHOST_EXIT = 1
MARKER = "mcuc_port_cycles"
_RESULT = re.compile(r"^MCUC_RESULT (.*)$", re.MULTILINE)
_OUT = re.compile(r"^MCUC_OUT ([0-9a-f]+)\s*$", re.MULTILINE)


@dataclass
class Firmware:
    elf: Path
    manifest: dict
    board: Board
    toolchain: str
    symbols: dict[str, int]
    image_bytes: int = 0  # what is programmed into flash: loadable bytes of the ELF


def image_bytes(elf: Path) -> int:
    from elftools.elf.elffile import ELFFile

    with open(elf, "rb") as f:
        return sum(int(s["p_filesz"]) for s in ELFFile(f).iter_segments() if s["p_type"] == "PT_LOAD")


@dataclass
class EngineRun:
    """What one simulator session returns."""

    console: str
    instructions: int  # from reset to exit
    cycles: int
    marks: list[tuple[int, int]] | None  # (instructions, cycles) at each marker entry; None: not recorded
    seconds: float


@dataclass
class FirmwareRun:
    outputs: dict[str, np.ndarray]
    result: dict[str, str]
    simulator: str
    toolchain: str
    board: str
    samples: int
    instructions: int  # per inference (mean over samples)
    cycles: int  # per inference, estimated by the cycle model
    instructions_total: int  # whole sessions, reset to exit
    cycles_total: int
    layers: list[dict] = field(default_factory=list)
    sessions: int = 1
    seconds: float = 0.0
    console: str = ""
    why: str = ""  # why this simulator was chosen
    image_bytes: int = 0  # the firmware image in flash


def board_of(man: dict) -> Board:
    return load_board(man["board"])


def build_firmware(project_dir, *, timeout: float = 600) -> Firmware:
    """``make`` the firmware with per-layer markers (PROFILE=1) using the selected toolchain."""
    project_dir = Path(project_dir)
    man = _manifest(project_dir)
    board = board_of(man)
    tc = toolchain.select(board)
    if shutil.which("make") is None:
        raise McucError("make is not installed")
    cmd = ["make", "-B", "--no-print-directory", "PROFILE=1"] + [f"{k}={v}" for k, v in tc.make_vars.items()]
    try:
        r = subprocess.run(cmd, cwd=project_dir, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise McucError(f"firmware build timed out after {timeout:.0f} s", where=str(project_dir)) from None
    if r.returncode != 0:
        text = r.stderr + r.stdout
        over = re.search(r"mcuc: (RAM|flash) overflow[^\n\"]*|region `?(\w+)'? overflowed by (\d+) bytes", text)
        if over:
            raise McucError(f"firmware does not fit {board.name}: {over.group(0)}", where=str(project_dir))
        raise McucError(f"firmware build failed: {_first_error(text)}", where=str(project_dir))
    elf = project_dir / man["target"]
    if not elf.is_file():
        raise McucError(f"build produced no {man['target']}", where=str(project_dir))
    man["toolchain"] = tc.description
    return Firmware(elf, man, board, tc.description, elf_symbols(elf), image_bytes(elf))


def elf_symbols(elf: Path) -> dict[str, int]:
    from elftools.elf.elffile import ELFFile
    from elftools.elf.sections import SymbolTableSection

    out = {}
    with open(elf, "rb") as f:
        for sec in ELFFile(f).iter_sections():
            if isinstance(sec, SymbolTableSection):
                for s in sec.iter_symbols():
                    if s.name and not s.name.startswith("$"):
                        out[s.name] = int(s["st_value"])
    return out


def sample_stream(man: dict, inputs: dict[str, np.ndarray]) -> tuple[int, list[bytes]]:
    """N and each sample's input bytes, in the harness's order."""
    n, arrays = _samples(man, inputs)
    return n, [b"".join(a[s].tobytes() for a in arrays) for s in range(n)]


def blob(samples: list[bytes], *, semihost_exit: bool = True) -> bytes:
    stream = struct.pack("<I", len(samples)) + b"".join(samples)
    return struct.pack("<IIII", BLOB_MAGIC, FLAG_SEMIHOST_EXIT if semihost_exit else 0, len(stream), 0) + stream


def sessions(fw: Firmware, samples: list[bytes]) -> list[list[bytes]]:
    """Samples grouped so that each group's blob fits the flash left after the image: usually
    one session for all of them."""
    cap = fw.symbols["mcuc_input_blob_end"] - fw.symbols["mcuc_input_blob"] - BLOB_OVERHEAD
    per = len(samples[0]) if samples else 0
    if per > cap:
        raise McucError(f"one sample ({per:,} B) does not fit the {cap:,} B of flash left for inputs on {fw.board.name}")
    if not samples:
        return [[]]
    k = max(1, cap // max(1, per))
    return [samples[i:i + k] for i in range(0, len(samples), k)]


def last_line(text: str) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else "(no output)"


def parse_console(text: str, man: dict, n: int, simulator: str) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    m = _RESULT.search(text)
    if not m:
        raise McucError(f"{simulator}: the firmware printed no MCUC_RESULT line; last output: {last_line(text)!r}")
    result = dict(kv.split("=", 1) for kv in m.group(1).split() if "=" in kv)
    if result.get("status") != "PASS":
        raise McucError(f"{simulator}: firmware reported {m.group(0)}")
    data = bytes.fromhex("".join(_OUT.findall(text[:m.start()])))
    outputs = decode_outputs(man, data, n, f"{simulator}: the firmware")
    return outputs, result


def timed_layers(man: dict) -> list[dict]:
    return [li for li in man["layers"] if li.get("function")]


def attribute(man: dict, marks: list[tuple[int, int]], n: int, simulator: str) -> tuple[list[dict], int, int]:
    """Per-layer (instructions, cycles) summed over samples, and the inference totals."""
    timed = timed_layers(man)
    per = 2 + 2 * len(timed)
    if len(marks) != n * per:
        raise McucError(f"{simulator}: {len(marks)} timing marks for {n} sample(s), expected {n * per}")
    layers = [{"name": li["layer"], "op": li["op"], "macs": li.get("macs", 0), "instructions": 0, "cycles": 0}
              for li in timed]
    ins = cyc = 0
    for s in range(n):
        g = marks[s * per:(s + 1) * per]
        ins += g[-1][0] - g[0][0]
        cyc += g[-1][1] - g[0][1]
        for j in range(len(timed)):
            b, e = g[1 + 2 * j], g[2 + 2 * j]
            layers[j]["instructions"] += e[0] - b[0]
            layers[j]["cycles"] += e[1] - b[1]
    return layers, ins, cyc


_LAYER = re.compile(r"^MCUC_LAYER index=(\d+) name=(\S+) cycles=(\d+)$", re.MULTILINE)


def firmware_layers(man: dict, console: str, n: int) -> list[dict]:
    """Per-layer figures from the firmware's own MCUC_LAYER lines (DWT CYCCNT of the simulator's
    clock, summed over the samples of every session), for engines without marker snapshots.
    They are not the cycle model: ``cycles`` stays None, the reading is ``dwt_ticks``."""
    ticks: dict[str, int] = {}
    for _, name, c in _LAYER.findall(console):
        ticks[name] = ticks.get(name, 0) + int(c)
    return [{"name": li["layer"], "op": li["op"], "macs": li.get("macs", 0), "instructions": None, "cycles": None,
             "dwt_ticks": round(ticks.get(li["layer"], 0) / max(1, n))} for li in timed_layers(man)]


def read_manifest(project_dir) -> dict:
    return json.loads((Path(project_dir) / "manifest.json").read_text())
