"""``mcuc quantize`` end to end: files in, a QDQ model out that mcuc compiles; errors as one line, status 2."""

from __future__ import annotations

import numpy as np
import onnx
from click.testing import CliRunner

import tests.models as zoo
from compiler.cli import main

from ._helpers import calibration, compile_onnx


def _files(tmp_path, name="float_cnn", data=None):
    m = tmp_path / "float.onnx"
    m.write_bytes(zoo.build(name).model.SerializeToString())
    c = tmp_path / "calib.npy"
    np.save(c, calibration(name, 64) if data is None else data)
    return m, c


def test_quantize_writes_a_model_mcuc_compiles(tmp_path):
    m, c = _files(tmp_path)
    out = tmp_path / "q.onnx"
    res = CliRunner().invoke(main, ["quantize", str(m), "--calibration", str(c), "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "wrote" in res.output and "int8 per-channel" in res.output
    q = onnx.load(str(out))
    assert zoo.all_scales_pow2(q)
    assert compile_onnx(q).outputs


def test_flash_budget_implies_mixed(tmp_path):
    m, c = _files(tmp_path)
    out = tmp_path / "q.onnx"
    res = CliRunner().invoke(main, ["quantize", str(m), "-c", str(c), "-o", str(out), "--flash-budget", "70%"])
    assert res.exit_code == 0, res.output
    assert "weights flash" in res.output and "int4" in res.output


def test_existing_output_needs_force(tmp_path):
    m, c = _files(tmp_path)
    out = tmp_path / "q.onnx"
    out.write_bytes(b"x")
    res = CliRunner().invoke(main, ["quantize", str(m), "-c", str(c), "-o", str(out)])
    assert res.exit_code == 2 and "--force" in res.output
    res = CliRunner().invoke(main, ["quantize", str(m), "-c", str(c), "-o", str(out), "--force", "--calibrator", "minmax"])
    assert res.exit_code == 0, res.output


def test_bad_calibration_is_one_line_status_2(tmp_path):
    m, c = _files(tmp_path, data=np.full((16, 1, 8, 8), np.nan, np.float32))
    res = CliRunner().invoke(main, ["quantize", str(m), "-c", str(c), "-o", str(tmp_path / "q.onnx")])
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mcuc: error: calibration data ") and "NaN" in lines[0]


def test_budget_with_fixed_bits_is_an_error(tmp_path):
    m, c = _files(tmp_path)
    res = CliRunner().invoke(main, ["quantize", str(m), "-c", str(c), "-o", str(tmp_path / "q.onnx"),
                                    "--weight-bits", "8", "--flash-budget", "1000"])
    assert res.exit_code == 2 and "--flash-budget applies to --weight-bits mixed" in res.output


def test_quantized_input_model_is_rejected(tmp_path):
    m, c = _files(tmp_path)
    m.write_bytes(zoo.build("ort_qdq_cnn_s8_pc").model.SerializeToString())
    res = CliRunner().invoke(main, ["quantize", str(m), "-c", str(c), "-o", str(tmp_path / "q.onnx")])
    assert res.exit_code == 2 and "already quantized" in res.output
