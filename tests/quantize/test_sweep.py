"""``mcuc sweep``: points, costs, Pareto flags, the JSON and the plot; errors as one line, status 2."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

import tests.models as zoo
from compiler.cli import main
from compiler.errors import McucError
from compiler.quantize.sweep import Point, pareto, policy_spec

from ._helpers import calibration, digits_test

BUILDER = "tests.quantize.sweep_models:zoo_cnn"


def _sweep(tmp_path, *args):
    out = tmp_path / "sw"
    res = CliRunner().invoke(main, ["sweep", *args, "-o", str(out), "-j", "1"])
    return res, out


def test_pareto_flags():
    pts = [Point(1, "a", accuracy=0.9, weights_bytes=100, cycles=50), Point(1, "b", accuracy=0.95, weights_bytes=200, cycles=40),
           Point(1, "c", accuracy=0.85, weights_bytes=150, cycles=60), Point(1, "d", accuracy=0.9, weights_bytes=120, cycles=45)]
    pareto(pts, "weights_bytes")
    pareto(pts, "cycles")
    assert [p.pareto_flash for p in pts] == [True, True, False, False]
    assert [p.pareto_cycles for p in pts] == [False, True, False, False]


def test_policy_names():
    assert policy_spec("mixed:60%") == ("mixed", "60%", None)
    assert policy_spec("ternary") == ("ternary", None, 2)
    with pytest.raises(McucError, match="unknown policy"):
        policy_spec("int3")


def test_builder_sweep_on_host_writes_json_and_plot(tmp_path):
    res, out = _sweep(tmp_path, "--builder", BUILDER, "--policies", "int8,ternary", "--board", "host")
    assert res.exit_code == 0, res.output
    data = json.loads((out / "sweep.json").read_text())
    assert (out / "sweep.png").read_bytes()[:4] == b"\x89PNG"
    assert "no cycle estimate" in data["cycles"] and data["model"] == "float_cnn"
    by = {p["policy"]: p for p in data["points"]}
    assert set(by) == {"int8", "ternary"}
    assert all(p["error"] is None and p["cycles"] is None for p in by.values())
    assert by["ternary"]["weights_bytes"] < by["int8"]["weights_bytes"]
    assert "ternary per-channel" in by["ternary"]["plan"].values()
    # A point not beaten on flash by the other is on the frontier; at least one always is.
    assert any(p["pareto_flash"] for p in by.values())
    assert abs(by["int8"]["float_accuracy"] - 0.9741) < 1e-3 and by["int8"]["accuracy"] > 0.95


def test_onnx_file_sweep(tmp_path):
    m = tmp_path / "m.onnx"
    m.write_bytes(zoo.build("float_cnn").model.SerializeToString())
    x, y = digits_test("float_cnn")
    np.save(tmp_path / "c.npy", calibration("float_cnn", 64))
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    res, out = _sweep(tmp_path, str(m), "-c", str(tmp_path / "c.npy"), "--data", str(tmp_path / "x.npy"), "--labels",
                      str(tmp_path / "y.npy"), "--policies", "int8", "--board", "host")
    assert res.exit_code == 0, res.output
    pts = json.loads((out / "sweep.json").read_text())["points"]
    assert len(pts) == 1 and pts[0]["accuracy"] > 0.95 and pts[0]["pareto_flash"]


@pytest.mark.slow
@pytest.mark.arm_gcc
def test_cycles_come_from_a_firmware_run(tmp_path):
    if shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("arm-none-eabi-gcc is not installed")
    res, out = _sweep(tmp_path, "--builder", BUILDER, "--policies", "int8,binary", "--board", "stm32f4-discovery",
                      "--cycles", "run")
    assert res.exit_code == 0, res.output
    data = json.loads((out / "sweep.json").read_text())
    assert data["cycles"].startswith("estimated, Cortex-M4 model")
    assert all(p["cycles"] > p["macs"] > 0 for p in data["points"])


@pytest.mark.parametrize("args,msg", [
    ([], "either MODEL"),
    (["--builder", BUILDER, "x.onnx"], "either MODEL"),
    (["x.onnx", "-c", "c.npy"], "needs --data, --labels"),
    (["--builder", BUILDER, "--policies", "int8,int5"], "unknown policy 'int5'"),
    (["--builder", BUILDER, "--widths", "1,-2"], "positive"),
    (["--builder", "no.such.module:f"], "cannot load it"),
    (["--builder", BUILDER, "--widths", "0.5", "--board", "host"], "width 1 only"),
    (["--builder", BUILDER, "--board", "host", "--cycles", "run", "--policies", "int8"], "no simulator"),
])
def test_errors_are_one_line(tmp_path, args, msg):
    res, _ = _sweep(tmp_path, *args)
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and msg in lines[0], res.output


def test_existing_sweep_needs_force(tmp_path):
    (tmp_path / "sw").mkdir()
    (tmp_path / "sw" / "sweep.json").write_text("{}")
    res, _ = _sweep(tmp_path, "--builder", BUILDER, "--board", "host")
    assert res.exit_code == 2 and "--force" in res.output


def test_mismatched_labels(tmp_path):
    m = tmp_path / "m.onnx"
    m.write_bytes(zoo.build("float_cnn").model.SerializeToString())
    np.save(tmp_path / "c.npy", calibration("float_cnn", 64))
    np.save(tmp_path / "x.npy", digits_test("float_cnn")[0])
    np.save(tmp_path / "y.npy", np.zeros(3, np.int64))
    res, _ = _sweep(tmp_path, str(m), "-c", str(tmp_path / "c.npy"), "--data", str(tmp_path / "x.npy"), "--labels",
                    str(tmp_path / "y.npy"), "--board", "host")
    assert res.exit_code == 2 and "integer class indices" in res.output


def test_unreadable_labelled_data(tmp_path):
    m = tmp_path / "m.onnx"
    m.write_bytes(zoo.build("float_cnn").model.SerializeToString())
    np.save(tmp_path / "c.npy", calibration("float_cnn", 64))
    (tmp_path / "x.npy").write_bytes(b"not npy")
    np.save(tmp_path / "y.npy", np.zeros(3, np.int64))
    res, _ = _sweep(tmp_path, str(m), "-c", str(tmp_path / "c.npy"), "--data", str(tmp_path / "x.npy"), "--labels",
                    str(tmp_path / "y.npy"), "--board", "host")
    assert res.exit_code == 2 and "labelled data" in res.output and "not a readable .npy" in res.output
