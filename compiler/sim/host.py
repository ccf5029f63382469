"""Run a generated project natively: build it with its Makefile, stream samples through the harness.

The harness protocol is in runtime_c/include/mcuc_port.h: a uint32 sample count, then each
sample's inputs in order; outputs come back the same way, and text lines end with
``MCUC_RESULT status=...``. All N samples run in one process.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import struct
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import McucError
from ..ir.dtypes import DType
from .protocol import decode_outputs

_RESULT = re.compile(r"^MCUC_RESULT (.*)$", re.MULTILINE)
_LAYER = re.compile(r"^MCUC_LAYER index=(\d+) name=(\S+) cycles=(\d+)$", re.MULTILINE)


@dataclass
class HostRun:
    outputs: dict[str, np.ndarray]
    result: dict[str, str]  # the MCUC_RESULT fields
    layer_cycles: dict[str, int] = field(default_factory=dict)
    stdout: str = ""


def _first_error(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for key in ("error:", "ERROR:", "runtime error", "error", "undefined reference"):
        for ln in lines:
            if key in ln:
                return ln
    return lines[0] if lines else "no message"


def _manifest(project_dir: Path) -> dict:
    p = project_dir / "manifest.json"
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError) as e:
        raise McucError(f"not a generated project: {e}", where=str(p)) from None


def build_host(project_dir, *, cc: str | None = None, cflags: str | None = None, profile: bool = False,
               timeout: float = 300) -> Path:
    """``make`` the project's harness (always rebuilt, as flags may differ); returns the binary."""
    project_dir = Path(project_dir)
    man = _manifest(project_dir)
    if shutil.which("make") is None:
        raise McucError("make is not installed")
    cmd = ["make", "-B", "--no-print-directory"]
    if cc:
        cmd.append(f"CC={cc}")
    if cflags is not None:
        cmd.append(f"CFLAGS={cflags}")
    if profile:
        cmd.append("PROFILE=1")
    try:
        r = subprocess.run(cmd, cwd=project_dir, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise McucError(f"build timed out after {timeout:.0f} s", where=str(project_dir)) from None
    if r.returncode != 0:
        raise McucError(f"build failed: {_first_error(r.stderr + r.stdout)}", where=str(project_dir))
    exe = project_dir / man["target"]
    if not exe.is_file():
        raise McucError(f"build produced no {man['target']}", where=str(project_dir))
    return exe


def _samples(man: dict, inputs: dict[str, np.ndarray]) -> tuple[int, list[np.ndarray]]:
    arrays, n = [], None
    for t in man["inputs"]:
        key = t["graph_name"] if t["graph_name"] in inputs else t["name"]
        if key not in inputs:
            raise McucError(f"no data for input {t['graph_name']!r}; got {sorted(inputs)}")
        dt = DType[t["dtype"].upper()]
        a = np.asarray(inputs[key])
        if a.dtype.kind not in "iub":
            raise McucError(f"input {t['graph_name']!r}: integer data expected, got {a.dtype}")
        if a.size and (a.min() < dt.qmin or a.max() > dt.qmax):
            raise McucError(f"input {t['graph_name']!r}: values outside {dt.name.lower()}")
        shape = tuple(t["shape"])
        batch = shape[0] if shape else 1
        if shape:
            if a.ndim != len(shape) or tuple(a.shape[1:]) != shape[1:] or batch == 0 or a.shape[0] % batch:
                raise McucError(f"input {t['graph_name']!r}: shape {a.shape} does not stack samples of {shape}")
            count = a.shape[0] // batch
        else:
            count = a.size
        if n is not None and count != n:
            raise McucError("inputs hold different numbers of samples")
        n = count
        per_sample = int(np.prod(shape, dtype=np.int64)) if shape else 1
        arrays.append(a.astype(dt.np.newbyteorder("<")).reshape(count, per_sample))
    return (n or 0), arrays


def run_host_detailed(project_dir, inputs: dict[str, np.ndarray], *, cc: str | None = None,
                      cflags: str | None = None, profile: bool = False, timeout: float = 300,
                      build: bool = True) -> HostRun:
    project_dir = Path(project_dir)
    man = _manifest(project_dir)
    n, arrays = _samples(man, inputs)
    exe = build_host(project_dir, cc=cc, cflags=cflags, profile=profile, timeout=timeout) if build \
        else project_dir / man["target"]
    with tempfile.TemporaryDirectory(prefix="mcuc-host-") as tmp:
        inp, outp = Path(tmp) / "in.bin", Path(tmp) / "out.bin"
        with open(inp, "wb") as f:
            f.write(struct.pack("<I", n))
            for s in range(n):
                for a in arrays:
                    f.write(a[s].tobytes())
        try:
            r = subprocess.run([str(exe), str(inp), str(outp)], capture_output=True, text=True, timeout=timeout,
                               env={**os.environ, "ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "detect_leaks=0")})
        except subprocess.TimeoutExpired:
            raise McucError(f"{exe.name} timed out after {timeout:.0f} s") from None
        if r.returncode < 0:
            sig = signal.Signals(-r.returncode).name
            raise McucError(f"{exe.name} crashed with {sig}: {_first_error(r.stderr)}")
        if r.returncode != 0:
            raise McucError(f"{exe.name} failed (exit {r.returncode}): {_first_error(r.stderr + r.stdout)}")
        m = _RESULT.search(r.stdout)
        if not m:
            raise McucError(f"{exe.name} printed no MCUC_RESULT line")
        result = dict(kv.split("=", 1) for kv in m.group(1).split() if "=" in kv)
        if result.get("status") != "PASS":
            raise McucError(f"{exe.name} reported {m.group(0)}")
        data = outp.read_bytes()
    outputs = decode_outputs(man, data, n, exe.name)
    layers = {name: int(c) for _, name, c in _LAYER.findall(r.stdout)}
    return HostRun(outputs, result, layers, r.stdout)


def run_host(project_dir, inputs: dict[str, np.ndarray], **kw) -> dict[str, np.ndarray]:
    """Build the project with its Makefile and run it on N stacked samples (batch on axis 0).

    ``inputs`` maps each graph input's name (or its C name) to integer data; returns the integer
    outputs by graph output name. Build failures and crashes raise McucError.
    """
    return run_host_detailed(project_dir, inputs, **kw).outputs
