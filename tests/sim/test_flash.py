"""`mcuc flash`: the exact command of the tool each board declares, and its dry run."""

from __future__ import annotations

import json
import shlex

import pytest
from click.testing import CliRunner

from compiler.boards import load_board
from compiler.cli import main
from compiler.errors import McucError
from compiler.sim.flash import flash, flash_command

from ._fw import FIRMWARE_BOARDS


def _fake_project(tmp_path, board):
    man = {"board": load_board(board).qualified, "target": "net.elf"}
    (tmp_path / "manifest.json").write_text(json.dumps(man))
    return man


@pytest.mark.parametrize("board, want", [
    ("stm32f4-discovery", ["openocd", "-f", "board/stm32f4discovery.cfg", "-c", "program {d}/net.elf verify reset exit"]),
    ("nucleo-l4r5zi", ["st-flash", "--reset", "write", "{d}/net.bin", "0x08000000"]),
    ("mps2-an386", ["pyocd", "flash", "--target", "cortex_m", "{d}/net.elf"]),
])
def test_command_per_board(board, want, tmp_path):
    man = _fake_project(tmp_path, board)
    d = str(tmp_path.resolve())
    assert flash_command(load_board(board), tmp_path, man) == [w.format(d=d) for w in want]


@pytest.mark.parametrize("board", FIRMWARE_BOARDS)
def test_cli_dry_run_prints_the_command(board, tmp_path):
    man = _fake_project(tmp_path, board)
    r = CliRunner().invoke(main, ["flash", str(tmp_path), "--board", board, "--dry-run"])
    assert r.exit_code == 0, r.output
    assert shlex.split(r.stdout.strip()) == flash_command(load_board(board), tmp_path, man)


def test_errors(tmp_path):
    _fake_project(tmp_path, "stm32f4-discovery")
    r = CliRunner().invoke(main, ["flash", str(tmp_path), "--board", "nucleo-l4r5zi", "--dry-run"])
    assert r.exit_code == 2 and "generated for st/stm32f4-discovery" in r.output
    with pytest.raises(McucError, match="declares no flash tool"):
        flash(load_board("host"), tmp_path, {"target": "x"}, dry_run=True)


def test_missing_tool_names_the_command(tmp_path, monkeypatch):
    man = _fake_project(tmp_path, "stm32f4-discovery")
    monkeypatch.setattr("compiler.sim.flash.shutil.which", lambda _: None)
    with pytest.raises(McucError, match=r"openocd is not installed; the command would be: openocd -f"):
        flash(load_board("stm32f4-discovery"), tmp_path, man)
