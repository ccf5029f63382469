"""Bad input gets one line naming what is wrong and where, a non-zero exit, no traceback, no output."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import tests.models as zoo


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "compiler.cli", *map(str, args)], capture_output=True, text=True, cwd=cwd)


@pytest.mark.parametrize("name", sorted(zoo.BAD))
def test_bad_model_is_one_line_error(name, tmp_path):
    path = tmp_path / f"{name}.onnx"
    path.write_bytes(zoo.BAD[name]())
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((1, 1, 8, 8), np.float32))
    out = tmp_path / "y.npy"
    r = run_cli("interpret", path, "--input", x, "--output", out)
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr
    msg = lines[0].lower()
    assert msg.startswith("mcuc: error: ")
    for phrase in zoo.BAD_ERRORS[name]:
        assert phrase in msg, msg
    assert str(path).lower() in msg  # names the file
    assert not out.exists()


def test_unsupported_op_names_node_op_and_opset(tmp_path):
    path = tmp_path / "m.onnx"
    path.write_bytes(zoo.BAD["unsupported_op_einsum"]())
    r = run_cli("interpret", path, "--input", tmp_path / "none.npy", "--output", tmp_path / "y.npy")
    assert "node '" in r.stderr and "Einsum" in r.stderr and "opset" in r.stderr


def test_missing_file(tmp_path):
    r = run_cli("interpret", tmp_path / "nope.onnx", "--input", tmp_path / "x.npy", "--output", tmp_path / "y.npy")
    assert r.returncode == 2 and "cannot read" in r.stderr and "Traceback" not in r.stderr


def test_wrong_input_dtype_and_shape(tmp_path):
    z = zoo.build("ort_qdq_cnn_s8_pc")
    path = tmp_path / "m.onnx"
    path.write_bytes(z.model.SerializeToString())
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((3, 1, 8, 8), np.int64))
    r = run_cli("interpret", path, "--input", x, "--output", tmp_path / "y.npy")
    assert r.returncode == 2 and "dtype" in r.stderr and "Traceback" not in r.stderr
    np.save(x, np.zeros((3, 1, 7, 8), np.float32))
    r = run_cli("interpret", path, "--input", x, "--output", tmp_path / "y.npy")
    assert r.returncode == 2 and "shape" in r.stderr
    assert not (tmp_path / "y.npy").exists()


def test_dynamic_shape_accepted_with_input_shape(tmp_path):
    path = tmp_path / "m.onnx"
    path.write_bytes(zoo.BAD["dynamic_spatial_dim"]())
    r = run_cli("interpret", path, "--input", tmp_path / "x.npy", "--output", tmp_path / "y.npy")
    assert "--input-shape" in r.stderr  # the error says how to fix it
