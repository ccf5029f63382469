"""The firmware boards as data: every board loads, generates a project from its families'
templates (start-up, linker script, console driver, Makefile), and toolchain selection falls
back to PyPI's ziglang clang when the board's cross compiler is missing."""

from __future__ import annotations

import inspect
import re
import subprocess

import pytest

import tests.models as zoo
from compiler.boards import list_boards, load_board
from compiler.codegen import generate_project, toolchain
from compiler.errors import McucError

from ..frontend.zoo_check import compile_zoo

FIRMWARE = ["stm32f4-discovery", "nucleo-l4r5zi", "mps2-an386"]


def test_boards_present_and_described():
    assert set(FIRMWARE) <= set(list_boards())
    f4 = load_board("stm32f4-discovery")
    assert f4.core == "cortex-m4" and {"dsp", "fpu"} <= set(f4.isa) and f4.clock_hz == 168_000_000
    assert [(m.name, m.size) for m in f4.memories] == [("flash", 1 << 20), ("sram", 128 << 10), ("ccm", 64 << 10)]
    assert f4.simulators.qemu.machine == "netduinoplus2" and f4.simulators.qemu.serial_index == 1
    nu = load_board("nucleo-l4r5zi")
    assert nu.clock_hz == 120_000_000 and nu.memory("flash")[0].size == 2 << 20 and nu.memory("ram")[0].size == 640 << 10
    assert nu.simulators.qemu is None  # QEMU 7.2 emulates no STM32L4
    assert load_board("mps2-an386").simulators.qemu.machine == "mps2-an386"
    for name in FIRMWARE:
        b = load_board(name)
        assert b.console.kind == "uart" and b.console.base and b.flash.tool in ("openocd", "st-flash", "pyocd")
        assert b.simulators.unicorn.memory_map and b.simulators.renode.uart
        assert b.families[-2:] == ["cortex-m", "generic"]


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    return compile_zoo(zoo.build("ort_qdq_cnn_s8_pc"), tmp_path_factory.mktemp("g"))


@pytest.mark.parametrize("board", ["host", *FIRMWARE])
def test_every_board_generates_and_builds(board, graph, tmp_path):
    """A project for every board; it builds wherever the board's toolchain (or ziglang) exists."""
    b = load_board(board)
    man = generate_project(graph, b, tmp_path, model_name="digits", model_sha256="0" * 64)
    if board != "host":
        for f in ("mcuc_startup.c", "mcuc_link.ld", "mcuc_console.c", "mcuc_board.h", "mcuc.resc", "mcuc.robot"):
            assert f in man["files"], f
        assert man["target"] == "digits.elf" and man["fits"]["flash_bytes"] <= man["fits"]["flash_available"]
        fam = b.families[0]
        assert man["templates"]["platform/mcuc_console.c.j2"] == f"{fam}/platform/mcuc_console.c.j2"
    try:
        tc = toolchain.select(b)
    except McucError as e:
        pytest.skip(str(e))
    assert man["toolchain"] == tc.description
    r = subprocess.run(["make", "-B", *[f"{k}={v}" for k, v in tc.make_vars.items()]], cwd=tmp_path,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / man["target"]).is_file()


def test_layer_macs_in_manifest(graph, tmp_path):
    man = generate_project(graph, "stm32f4-discovery", tmp_path, model_name="digits", model_sha256="0" * 64)
    assert sum(li["macs"] for li in man["layers"]) == 4608 + 10368 + 1440


def _which(present):
    return lambda tool: f"/usr/bin/{tool}" if tool in present else None


def test_toolchain_selection_logic():
    b = load_board("stm32f4-discovery")
    gcc = toolchain.select(b, env={}, which=_which({"arm-none-eabi-gcc"}), have_zig=True)
    assert gcc.kind == "board" and gcc.cc == ("arm-none-eabi-gcc",) and gcc.make_vars == {}
    zig = toolchain.select(b, env={}, which=_which(set()), have_zig=True)
    assert zig.kind == "zig" and zig.cc[1:] == ("-m", "ziglang", "cc", "-target", "thumb-freestanding-eabihf",
                                                 "-mcpu=cortex_m4")
    assert "-isystem" in zig.cflags and zig.make_vars["CC"].endswith("-mcpu=cortex_m4")
    assert zig.description.startswith("zig cc (clang, PyPI ziglang")
    forced = toolchain.select(b, env={"MCUC_TOOLCHAIN": "zig"}, which=_which({"arm-none-eabi-gcc"}), have_zig=True)
    assert forced.kind == "zig"
    env_cc = toolchain.select(b, env={"MCUC_ARM_CC": "my-gcc"}, which=_which({"my-gcc"}), have_zig=False)
    assert env_cc.cc == ("my-gcc",)
    with pytest.raises(McucError, match=r"arm-none-eabi-gcc is not installed \(install it or `pip install ziglang`\)"):
        toolchain.select(b, env={}, which=_which(set()), have_zig=False)
    with pytest.raises(McucError, match="ziglang package is not installed"):
        toolchain.select(b, env={"MCUC_TOOLCHAIN": "zig"}, which=_which(set()), have_zig=False)
    host = toolchain.select(load_board("host"), env={"MCUC_TOOLCHAIN": "zig"}, which=_which({"cc"}), have_zig=True)
    assert host.kind == "board"  # a board without a zig fallback keeps its compiler
    with pytest.raises(McucError, match="expected 'board' or 'zig'"):
        toolchain.select(b, env={"MCUC_TOOLCHAIN": "icc"}, which=_which(set()), have_zig=True)


def test_no_board_name_branches():
    """Boards differ by data and template overrides: no code asks which board it is."""
    from compiler.codegen import project
    from compiler.sim import firmware, qemu, renode, runner, unicorn_run

    for mod in (project, toolchain, firmware, qemu, renode, runner, unicorn_run):
        src = inspect.getsource(mod)
        assert not re.search(r"board\.(name|vendor|core|chip)\s*(==|!=|in\b)", src), mod.__name__
        assert not re.search(r"[\"'](stm32f4-discovery|nucleo-l4r5zi|mps2-an386|netduinoplus2)[\"']", src), mod.__name__
