"""End to end on the MLPerf Tiny reference models: ONNX -> pipeline -> C -> host, against
TFLite Micro's outputs (the bit-exact target) on the reference inputs.

Needs ../shared/models/mlperf_tiny (skipped without it) and the compiler pipeline.
"""

from __future__ import annotations

import numpy as np
import pytest

from compiler.codegen import generate_project
from compiler.sim import run_host_detailed
from tests.conftest import MLPERF_MODELS, mlperf_path

from ._tools import STRICT


@pytest.mark.parametrize("name", MLPERF_MODELS)
def test_matches_tflite_micro(name, tmp_path):
    path = mlperf_path(name)
    from compiler.pipeline import compile_model

    g = compile_model(path)
    io = np.load(path.parent / f"{name}_io.npz")
    x, want = io["x_int8"], io["y_tflm"]
    m = generate_project(g, "host", tmp_path, model_name=name, model_sha256="0" * 64)
    mem = m["memory"]
    assert mem["lower_bound"] <= mem["arena_bytes"] <= mem["sum_of_tensors"]
    run = run_host_detailed(tmp_path, {m["inputs"][0]["graph_name"]: x.reshape((-1,) + tuple(m["inputs"][0]["shape"][1:]))},
                            cflags=" ".join(STRICT + ["-O2"]))
    got = run.outputs[m["outputs"][0]["graph_name"]]
    assert run.result["samples"] == str(x.shape[0])
    assert np.array_equal(got.reshape(want.shape), want)
