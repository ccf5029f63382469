"""Renode artifacts: generated for every firmware board (script, test suite, platform overlay),
the suite parses with robotframework, and the runner's parsing works on canned logs. Running
them needs renode on PATH, which no reachable registry provides here."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

import tests.models as zoo
from compiler.boards import load_board
from compiler.codegen import generate_project
from compiler.errors import McucError
from compiler.sim import renode

from ..frontend.zoo_check import compile_zoo
from ._fw import FIRMWARE_BOARDS

DIGITS = "ort_qdq_cnn_s8_pc"


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    return compile_zoo(zoo.build(DIGITS), tmp_path_factory.mktemp("g"))


@pytest.mark.parametrize("board", FIRMWARE_BOARDS)
def test_artifacts_generated_for_every_board(board, graph, tmp_path):
    b = load_board(board)
    man = generate_project(graph, b, tmp_path, model_name="digits", model_sha256="0" * 64)
    resc = (tmp_path / "mcuc.resc").read_text()
    assert f"$elf ?= @$ORIGIN/{man['target']}" in resc
    assert "sysbus LoadELF $elf" in resc and "sysbus LoadBinary $blob $blob_addr" in resc
    assert f"{b.simulators.renode.uart} CreateFileBackend $uart_log true" in resc
    if b.simulators.renode.platform:
        assert f"machine LoadPlatformDescription @{b.simulators.renode.platform}" in resc
    overlay = (tmp_path / "mcuc_overlay.repl").read_text()
    assert "dwt: Miscellaneous.DWT @ sysbus 0xE0001000" in overlay
    assert "frequency: " in overlay


@pytest.mark.parametrize("board", FIRMWARE_BOARDS)
def test_robot_suite_parses(board, graph, tmp_path):
    robot_api = pytest.importorskip("robot.api", reason="robotframework is not installed")
    from robot.api.parsing import ModelVisitor
    generate_project(graph, load_board(board), tmp_path, model_name="digits", model_sha256="0" * 64)
    model = robot_api.get_model(str(tmp_path / "mcuc.robot"))
    errors = []

    class Errors(ModelVisitor):
        def generic_visit(self, node):
            errors.extend(getattr(node, "errors", ()) or ())
            super().generic_visit(node)

    Errors().visit(model)
    assert errors == []
    text = (tmp_path / "mcuc.robot").read_text()
    # It waits for the result line (with a timeout as a failure), never sleeps a fixed time.
    assert "Wait For Line On Uart    MCUC_RESULT status=" in text and "Sleep" not in text
    assert "ExecutedInstructions" in text and "Should Contain    ${result}[Line]    status=PASS" in text
    suite = robot_api.TestSuiteBuilder().build(str(tmp_path / "mcuc.robot"))
    assert len(suite.tests) == 1


CANNED_PASS = """\
Preparing suites
Started Renode instance on port 9999; pid 4242
Starting suites
Running mcuc.robot
+++++ Starting test 'mcuc.Run digits On stm32f4-discovery'
MCUC_RENODE instructions=3112612
MCUC_RENODE MCUC_RESULT status=PASS samples=20 cycles=31126 cycles_per_sample=1556 fnv1a=4263546511
+++++ Finished test 'mcuc.Run digits On stm32f4-discovery' in 2.31 seconds with status OK
Tests finished successfully :)
"""

CANNED_TIMEOUT = """\
Running mcuc.robot
+++++ Starting test 'mcuc.Run digits On stm32f4-discovery'
+++++ Finished test 'mcuc.Run digits On stm32f4-discovery' in 600.02 seconds with status failed
====== FAILED: mcuc.Run digits On stm32f4-discovery
    Terminal tester failed!\x20
    Test: Wait for line 'MCUC_RESULT status=' timed out after 600 seconds
"""


def test_parse_canned_logs():
    info = renode.parse_output(CANNED_PASS)
    assert info["instructions"] == 3112612 and info["result_line"].startswith("MCUC_RESULT status=PASS")
    assert renode.parse_output("MCUC_RENODE instructions=0x10\nMCUC_RENODE MCUC_RESULT status=FAIL")["instructions"] == 16
    with pytest.raises(McucError, match=r"renode: the test suite printed no result; last output line: .*timed out"):
        renode.parse_output(CANNED_TIMEOUT)


def test_command_passes_blob_address(tmp_path):
    cmd = renode.command(tmp_path / "mcuc.robot", 0x08002400)
    assert cmd[:3] == ["renode-test", "--variable", "BLOB_ADDR:0x08002400"]


@pytest.mark.renode
def test_renode_runs_digits(graph, tmp_path):
    if not renode.available():
        pytest.skip("renode and renode-test are not on PATH (Renode is in no registry these machines reach)")
    from compiler.io import from_device, to_device
    from compiler.ir import interpreter
    from compiler.sim import runner

    z = zoo.build(DIGITS)
    feeds = {graph.inputs[0].name: np.asarray(z.inputs)[:4]}
    generate_project(graph, load_board("stm32f4-discovery"), tmp_path, model_name="digits", model_sha256="0" * 64)
    r = runner.run_firmware(tmp_path, to_device(graph, feeds), sim="renode")
    want = interpreter.run(graph, feeds)
    got = from_device(graph, r.outputs)
    assert all(np.array_equal(got[k], want[k]) for k in want)
    assert r.instructions > 0 and shutil.which("renode")


def test_renode_layers_come_from_the_firmware_lines():
    """Renode has no marker snapshots: per-layer figures are the firmware's DWT readings, kept
    apart from the cycle model's estimate."""
    from compiler.sim import firmware

    man = {"layers": [{"layer": "l0_conv", "op": "conv2d", "function": "f0", "macs": 10},
                      {"layer": "l1_flat", "op": "reshape", "function": None, "macs": 0},
                      {"layer": "l2_fc", "op": "dense", "function": "f2", "macs": 4}]}
    console = "MCUC_LAYER index=0 name=l0_conv cycles=900\nMCUC_LAYER index=1 name=l1_flat cycles=0\n" \
              "MCUC_LAYER index=2 name=l2_fc cycles=30\n"
    layers = firmware.firmware_layers(man, console + console, 3)
    assert [(li["name"], li["dwt_ticks"], li["cycles"]) for li in layers] == [("l0_conv", 600, None), ("l2_fc", 20, None)]
