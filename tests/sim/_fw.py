"""Helpers for the firmware tests: which boards, and skips (with the reason) when a tool is missing."""

from __future__ import annotations

import shutil

import pytest

from compiler.boards import load_board
from compiler.codegen import toolchain

FIRMWARE_BOARDS = ["stm32f4-discovery", "nucleo-l4r5zi", "mps2-an386"]


def need_arm_toolchain(board: str = "stm32f4-discovery") -> str:
    try:
        return toolchain.select(load_board(board)).description
    except Exception as e:  # noqa: BLE001 - any reason is the skip reason
        pytest.skip(f"no firmware toolchain: {e}")


def need_qemu() -> None:
    if shutil.which("qemu-system-arm") is None:
        pytest.skip("qemu-system-arm is not installed (make setup installs it as root)")
    if not any(shutil.which(c) for c in ("cc", "gcc", "clang")):
        pytest.skip("no host C compiler to build the QEMU plugin")
