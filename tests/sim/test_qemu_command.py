"""The QEMU command line built from board data, and the counting plugin's exactness under
-icount (an MMIO access inside a block makes QEMU re-run the block's start uninstrumented)."""

from __future__ import annotations

import functools

import numpy as np
import pytest

import tests.models as zoo
from compiler.boards import load_board
from compiler.codegen import generate_project
from compiler.errors import McucError
from compiler.io import to_device
from compiler.sim import firmware, qemu, runner

from ..frontend.zoo_check import compile_zoo, feeds_for
from ._fw import need_arm_toolchain, need_qemu

_COMMAND = qemu.command


def _fake_fw(tmp_path, board):
    syms = {"mcuc_port_cycles": 0x08000D6D, "mcuc_input_blob": 0x08002400, "mcuc_input_blob_end": 0x08100000,
            "_estack": 0x20020000}
    return firmware.Firmware(tmp_path / "m.elf", {}, load_board(board), "gcc", syms)


def test_command_from_board_data(tmp_path):
    need_qemu()
    fw = _fake_fw(tmp_path, "stm32f4-discovery")
    cmd = qemu.command(fw, tmp_path / "b.bin", tmp_path / "t.bin", tmp_path / "o.txt")
    s = " ".join(cmd)
    assert cmd[:3] == ["qemu-system-arm", "-M", "netduinoplus2"]
    # USART2 is the machine's second serial port.
    assert "-serial null -serial stdio" in s
    assert "-semihosting-config enable=on,target=native" in s and "-icount shift=0" in s
    assert f"loader,file={tmp_path / 'b.bin'},addr=0x8002400,force-raw=on" in s
    assert "marker=0x8000d6c" in s and "refill=2" in s
    mps2 = qemu.command(_fake_fw(tmp_path, "mps2-an386"), tmp_path / "b", tmp_path / "t", tmp_path / "o")
    assert mps2[2] == "mps2-an386" and "-serial null" not in " ".join(mps2)


def test_stand_in_machine_must_hold_the_firmware(tmp_path):
    fw = _fake_fw(tmp_path, "stm32f4-discovery")
    qemu.check_memory(fw, 1000)
    fw.symbols["_estack"] = 0x20040000  # a 256 KB RAM image: netduinoplus2 has 192 KB
    with pytest.raises(McucError, match=r"netduinoplus2 .* has no memory at 0x2003ffff .*--sim unicorn"):
        qemu.check_memory(fw, 1000)


@pytest.mark.arm_gcc
@pytest.mark.qemu
def test_counts_identical_with_and_without_icount(tmp_path, monkeypatch):
    need_arm_toolchain()
    need_qemu()
    z = zoo.build("ort_qdq_cnn_s8_pc")
    g = compile_zoo(z, tmp_path)
    feeds = {k: v[:5] for k, v in feeds_for(g, z).items()}
    generate_project(g, load_board("stm32f4-discovery"), tmp_path / "p", model_name="d", model_sha256="0" * 64)
    fw = firmware.build_firmware(tmp_path / "p")
    runs = []
    for icount in (True, False):
        monkeypatch.setattr(qemu, "command", functools.partial(_COMMAND, icount=icount))
        runs.append(runner.run_firmware(tmp_path / "p", to_device(g, feeds), sim="qemu", fw=fw))
    a, b = runs
    assert (a.instructions_total, a.cycles_total, a.instructions) == (b.instructions_total, b.cycles_total, b.instructions)
    assert np.array_equal(next(iter(a.outputs.values())), next(iter(b.outputs.values())))

