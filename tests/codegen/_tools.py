"""Host C compilers for the codegen tests: which exist, and the strict flags every build uses."""

from __future__ import annotations

import shutil
import subprocess

import pytest

STRICT = ["-std=c99", "-Wall", "-Wextra", "-Werror"]
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"]


def have(cc: str) -> bool:
    return shutil.which(cc) is not None


def sanitizers_work(cc: str) -> bool:
    """ASan needs runtime support (and ptrace-free memory mapping) that some sandboxes lack."""
    if not have(cc):
        return False
    try:
        r = subprocess.run([cc, *SANITIZE, "-x", "c", "-", "-o", "/dev/null"], input=b"int main(void){return 0;}",
                           capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0


def compilers() -> list:
    """pytest params for gcc and clang, each skipped with a reason where it is absent."""
    return [pytest.param(cc, marks=pytest.mark.skipif(not have(cc), reason=f"{cc} is not installed")) for cc in ("gcc", "clang")]
