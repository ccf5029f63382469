"""The interpreter on the four MLPerf Tiny models equals TFLite Micro's outputs bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from compiler.ir import interpreter
from compiler.pipeline import compile_model

from ..conftest import MLPERF_MODELS, mlperf_path


@pytest.mark.parametrize("name", MLPERF_MODELS)
def test_bit_exact_with_tflite_micro(name):
    path = mlperf_path(name)
    g = compile_model(path)
    assert g.meta["convention"] == "tflite"
    io = np.load(path.with_name(f"{name}_io.npz"))
    y = interpreter.run(g, {g.inputs[0].name: io["x_int8"]})[g.outputs[0].name]
    ref = io["y_tflm"]
    assert y.dtype == np.int8
    assert np.array_equal(y.reshape(ref.shape), ref)


@pytest.mark.parametrize("name", MLPERF_MODELS)
def test_no_transposes_left(name):
    g = compile_model(mlperf_path(name))
    assert not [n for n in g.nodes if n.op == "transpose"]
    assert all(n.attrs.get("layout", "NHWC") == "NHWC" for n in g.nodes if n.op in ("conv2d", "maxpool", "avgpool"))
