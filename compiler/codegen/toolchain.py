"""Which C compiler builds a board's code: the board's own (e.g. Debian's arm-none-eabi-gcc), or,
when that is not installed, the clang inside PyPI's ``ziglang`` package, so that
``pip install mcuc`` alone can build firmware. ``MCUC_TOOLCHAIN=zig`` forces the fallback on the
boards that have one (``toolchain.zig`` in the board file); ``MCUC_TOOLCHAIN=board`` forbids it.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from functools import cache

from .. import resources
from ..boards import Board, expand_env
from ..errors import McucError


@dataclass(frozen=True)
class Selected:
    kind: str  # 'board' (the board file's cc) or 'zig'
    cc: tuple[str, ...]  # the command, split
    cflags: tuple[str, ...]
    ldflags: tuple[str, ...]
    description: str  # e.g. 'arm-none-eabi-gcc 12.2.1', for manifests and reports
    make_vars: dict = field(default_factory=dict)  # what `make` is given to use this toolchain


def zig_available() -> bool:
    return importlib.util.find_spec("ziglang") is not None


@cache
def _version(cmd: tuple[str, ...]) -> str:
    try:
        r = subprocess.run([*cmd, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    first = (r.stdout or r.stderr).strip().splitlines()
    return first[0] if first else ""


def _gcc_description(cmd: tuple[str, ...]) -> str:
    line = _version(cmd)
    ver = line.split()[-1] if line.split() else "?"
    if ver.isdigit():  # 'arm-none-eabi-gcc (15:12.2.rel1-1) 12.2.1 20221205': drop the date
        ver = line.split()[-2]
    return f"{os.path.basename(cmd[0])} {ver}"


def select(board: Board, *, env=None, which=shutil.which, have_zig=None) -> Selected:
    """The toolchain that builds ``board``'s code on this machine; McucError if there is none."""
    env = os.environ if env is None else env
    have_zig = zig_available() if have_zig is None else have_zig
    cc = expand_env(board.toolchain.cc, env).split()
    forced = env.get("MCUC_TOOLCHAIN", "")
    zig = board.toolchain.zig
    if forced not in ("", "board", "zig"):
        raise McucError(f"MCUC_TOOLCHAIN={forced!r}: expected 'board' or 'zig'")
    if zig is None:
        forced = "board"
    if forced != "zig" and cc and which(cc[0]) is not None:
        return Selected("board", tuple(cc), tuple(board.toolchain.cflags), tuple(board.toolchain.ldflags),
                        _gcc_description(tuple(cc)))
    if zig is not None and have_zig and forced != "board":
        cmd = (sys.executable, "-m", "ziglang", "cc", "-target", zig.target, f"-mcpu={zig.cpu}")
        inc = str(resources.runtime_dir() / "freestanding")
        cflags = (*zig.cflags, "-isystem", inc)
        ver = _version((sys.executable, "-m", "ziglang", "version")) or "?"
        return Selected("zig", cmd, cflags, tuple(zig.ldflags), f"zig cc (clang, PyPI ziglang {ver})",
                        {"CC": " ".join(cmd), "CFLAGS": " ".join(cflags), "LDFLAGS": " ".join(zig.ldflags)})
    if forced == "zig":
        raise McucError("MCUC_TOOLCHAIN=zig but the ziglang package is not installed (pip install ziglang)")
    hint = " or `pip install ziglang`" if zig is not None else ""
    raise McucError(f"no C compiler for board {board.qualified!r}: {cc[0] if cc else '(none)'} is not installed "
                    f"(install it{hint})")
