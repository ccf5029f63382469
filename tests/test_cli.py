"""The `mcuc` command line: help, listing, the interpret / compile / run round trip."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from click.testing import CliRunner

from compiler.cli import main

from .ir.tiny_models import tiny_inputs, tiny_qdq_cnn


@pytest.fixture
def model(tmp_path):
    p = tmp_path / "tiny.onnx"
    onnx.save(tiny_qdq_cnn(), p)
    x = tmp_path / "x.npy"
    np.save(x, tiny_inputs(8))
    return p, x


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.mark.parametrize("cmd", [[], ["interpret"], ["compile"], ["run"], ["boards"]])
def test_every_command_has_help(cmd):
    r = invoke(*cmd, "--help")
    assert r.exit_code == 0 and "Usage:" in r.output


def test_boards_lists_host():
    r = invoke("boards")
    assert r.exit_code == 0 and "host" in r.output


def test_interpret_then_run_agree(model, tmp_path):
    p, x = model
    y1, y2 = tmp_path / "y1.npy", tmp_path / "y2.npz"
    assert invoke("interpret", p, "-i", x, "-o", y1).exit_code == 0
    assert invoke("run", p, "--board", "host", "-i", x, "-o", y2).exit_code == 0
    a = np.load(y1)
    b = np.load(y2)["y"]
    assert a.dtype == np.float32 and a.shape == (8, 4)
    assert np.array_equal(a, b)


def test_compile_refuses_to_overwrite_without_force(model, tmp_path):
    p, _ = model
    out = tmp_path / "proj"
    r = invoke("compile", p, "--board", "host", "-o", out)
    assert r.exit_code == 0 and "arena" in r.output
    before = (out / "tiny.c").read_bytes()
    r = CliRunner().invoke(main, ["compile", str(p), "--board", "host", "-o", str(out)])
    assert r.exit_code == 2 and ("--force" in r.output or "exists" in r.output)
    assert (out / "tiny.c").read_bytes() == before
    assert invoke("compile", p, "--board", "host", "-o", out, "--force").exit_code == 0


def test_unknown_board_lists_the_available_ones(model, tmp_path):
    p, _ = model
    r = CliRunner().invoke(main, ["compile", str(p), "--board", "nope", "-o", str(tmp_path / "o")])
    assert r.exit_code == 2 and "host" in r.output


def test_pow2_policy_reports_how_outputs_move(model, tmp_path):
    p, x = model
    r = CliRunner().invoke(main, ["interpret", str(p), "-i", str(x), "-o", str(tmp_path / "y.npy"), "--scale-policy", "pow2"])
    assert r.exit_code == 0
    assert "pow2 scales: output y:" in r.output and "% of elements changed" in r.output


def test_dump_after_prints_ir(model, tmp_path):
    p, x = model
    r = CliRunner().invoke(main, ["interpret", str(p), "-i", str(x), "-o", str(tmp_path / "y.npy"), "--dump-after", "lower-conv"])
    assert r.exit_code == 0 and "// after lower-conv" in r.output and "conv2d(" in r.output
