"""``mcuc export-robot``: the suite parses with robotframework, and the output lines and hash it
expects are exactly what the same firmware prints in Unicorn (Renode itself is not installable
here, so the suite's assertions are checked against another simulator's console)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from click.testing import CliRunner

from compiler.cli import main
from compiler.io import load_inputs, to_device
from compiler.pipeline import compile_model
from compiler.sim import runner

from ..sim._fw import need_arm_toolchain

FW = "stm32f4-discovery"


def _parse_errors(path) -> list:
    from robot.api import get_model
    from robot.api.parsing import ModelVisitor

    errors = []

    class Errors(ModelVisitor):
        def generic_visit(self, node):
            errors.extend(getattr(node, "errors", ()) or ())
            super().generic_visit(node)

    Errors().visit(get_model(str(path)))
    return errors


@pytest.mark.arm_gcc
def test_exported_suite_parses_and_expects_what_the_firmware_prints(model_dir, tmp_path):
    pytest.importorskip("robot.api", reason="robotframework is not installed")
    need_arm_toolchain(FW)
    from robot.api import TestSuiteBuilder

    out = tmp_path / "robot"
    r = CliRunner().invoke(main, ["export-robot", str(model_dir / "digits.onnx"), "--board", FW, "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert "4 sample(s), 4 output line(s) from the reference interpreter" in r.output
    suite = out / "digits.robot"
    for f in ("digits.elf", "mcuc.resc", "mcuc_overlay.repl", "mcuc_input_blob.bin"):
        assert (out / f).is_file(), f
    assert _parse_errors(suite) == []
    built = TestSuiteBuilder().build(str(suite))
    assert [t.name for t in built.tests] == ["Outputs Of digits On st/stm32f4-discovery Match"]
    text = suite.read_text()
    assert "ExecutedInstructions" in text and "Sleep" not in text

    want = re.findall(r"Wait For Line On Uart    \^(MCUC_OUT [0-9a-f]+)\$", text)
    fnv = re.search(r"fnv1a=(\d+)", text).group(1)
    g = compile_model(model_dir / "digits.onnx")
    feeds = load_inputs(model_dir / "digits.npy", g)
    run = runner.run_firmware(out, to_device(g, feeds), sim="unicorn")
    printed = re.findall(r"^(MCUC_OUT [0-9a-f]+)\s*$", run.console, re.MULTILINE)
    assert want == printed and len(want) == 4
    assert run.result["fnv1a"] == fnv and run.result["samples"] == "4"

    # Regenerating into the same directory needs --force; with a baseline the expected outputs
    # come from its record.
    r = CliRunner().invoke(main, ["export-robot", str(model_dir / "digits.onnx"), "--board", FW, "-o", str(out)])
    assert r.exit_code == 2 and "use --force" in r.output


@pytest.mark.arm_gcc
def test_expected_outputs_come_from_the_baseline(model_dir, tmp_path):
    """With --baseline, the suite expects the record's outputs (here the host's, which the
    firmware must equal bit for bit) instead of recomputing them."""
    import json

    need_arm_toolchain(FW)
    b = tmp_path / "b.json"
    r = CliRunner().invoke(main, ["regress", str(b), str(model_dir / "digits.onnx"), "--board", "host", "--update",
                                  "--jobs", "1", "--no-progress"])
    assert r.exit_code == 0, r.output
    data = json.loads(b.read_text())
    rec = data["records"].pop("digits@generic/host")
    rec["board"] = "st/stm32f4-discovery"
    data["records"]["digits@st/stm32f4-discovery"] = rec
    b.write_text(json.dumps(data))
    r = CliRunner().invoke(main, ["export-robot", str(model_dir / "digits.onnx"), "--board", FW, "-o",
                                  str(tmp_path / "b"), "--baseline", str(b)])
    assert r.exit_code == 0 and "from the baseline record" in r.output, r.output
    from compiler.regress.robot import device_outputs, expected_lines

    g = compile_model(model_dir / "digits.onnx")
    man = json.loads((tmp_path / "b" / "manifest.json").read_text())
    lines, fnv = expected_lines(man, device_outputs(g, load_inputs(model_dir / "digits.npy", g)), 4)
    text = (tmp_path / "b" / "digits.robot").read_text()
    assert re.findall(r"\^(MCUC_OUT [0-9a-f]+)\$", text) == lines and f"fnv1a={fnv}" in text


def test_board_without_renode_is_one_line(model_dir, tmp_path):
    r = CliRunner().invoke(main, ["export-robot", str(model_dir / "digits.onnx"), "--board", "host", "-o",
                                  str(tmp_path / "x")])
    assert r.exit_code == 2
    assert r.output.strip().splitlines() == [
        "mcuc: error: board 'generic/host' has no Renode description with a console UART (simulators.renode.uart)"]
    assert not (tmp_path / "x").exists()


def test_expected_lines_follow_the_port_protocol():
    from compiler.regress.robot import expected_lines

    man = {"outputs": [{"graph_name": "a", "dtype": "int8", "shape": [1, 40]},
                       {"graph_name": "b", "dtype": "int16", "shape": [1, 2]}]}
    a = np.arange(80, dtype=np.int8).reshape(2, 40)
    b = np.array([[1, -2], [256, 3]], np.int16)
    lines, h = expected_lines(man, {"a": a, "b": b}, 2)
    assert lines[0] == "MCUC_OUT " + bytes(range(32)).hex() and lines[1] == "MCUC_OUT " + bytes(range(32, 40)).hex()
    assert lines[2] == "MCUC_OUT 0100feff" and lines[5] == "MCUC_OUT 00010300" and len(lines) == 6
    data = a[0].tobytes() + b[0].astype("<i2").tobytes() + a[1].tobytes() + b[1].astype("<i2").tobytes()
    want = 2166136261
    for x in data:
        want = ((want ^ x) * 16777619) & 0xFFFFFFFF
    assert h == want
