"""Bad calibration data and unsuitable models: one-line McucErrors that say what is wrong."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

import tests.models as zoo
from compiler.errors import McucError
from compiler.quantize.data import MIN_SAMPLES, load_calibration
from compiler.quantize.ptq import Options, quantize

from ._helpers import calibration


def _good():
    return calibration("float_cnn", 32)


def _bad_cases():
    g = _good()
    nan = g.copy()
    nan[3, 0, 2, 2] = np.nan
    inf = g.copy()
    inf[5, 0, 1, 1] = -np.inf
    return {
        "rank": (g.reshape(32, 64), "rank 2"),
        "dims": (np.zeros((32, 1, 7, 7), np.float32) + np.arange(7, dtype=np.float32), "dimension 2 is 7, expected 8"),
        "channels": (np.repeat(g, 3, axis=1), "dimension 1 is 3, expected 1"),
        "int_dtype": ((g * 16).astype(np.int32), "dtype int32"),
        "bool_dtype": (g > 0.5, "dtype bool"),
        "nan": (nan, "1 NaN or infinite value(s) in 1 of 32 samples"),
        "inf": (inf, "NaN or infinite"),
        "constant": (np.full((32, 1, 8, 8), 0.25, np.float32), "every value is 0.25"),
        "identical": (np.repeat(g[:1], 32, axis=0), "all 32 samples are identical"),
        "too_few": (g[:MIN_SAMPLES - 1], f"{MIN_SAMPLES - 1} sample(s); at least {MIN_SAMPLES} are needed"),
    }


@pytest.mark.parametrize("case", list(_bad_cases()))
def test_bad_calibration_data(case):
    data, phrase = _bad_cases()[case]
    with pytest.raises(McucError) as e:
        quantize(zoo.build("float_cnn").model, data)
    msg = str(e.value)
    assert phrase in msg and "\n" not in msg


def test_exactly_the_minimum_is_accepted():
    r = quantize(zoo.build("float_cnn").model, _good()[:MIN_SAMPLES])
    assert r.model.graph.node


def test_float64_samples_are_accepted():
    assert quantize(zoo.build("float_cnn").model, _good().astype(np.float64)).model.graph.node


@pytest.mark.parametrize("name", ["ort_qdq_cnn_s8_pc", "ort_qop_cnn_u8", "brevitas_cnn_w8a8"])
def test_already_quantized_models_are_rejected(name):
    with pytest.raises(McucError, match="already quantized"):
        quantize(zoo.build(name).model, _good())


def test_unsupported_operator_is_named():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4])
    m = helper.make_model(helper.make_graph([helper.make_node("Erf", ["x"], ["y"], name="erf0")], "g", [x], [y]),
                          opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(McucError, match="operator Erf .*'erf0'.* not supported"):
        quantize(m, np.random.default_rng(0).normal(size=(16, 4)).astype(np.float32))


def test_non_constant_weights_are_rejected():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, None])
    nodes = [helper.make_node("Transpose", ["x"], ["xt"], name="t"), helper.make_node("MatMul", ["x", "xt"], ["y"], name="mm")]
    m = helper.make_model(helper.make_graph(nodes, "g", [x], [y]), opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(McucError, match="'mm' \\(MatMul\\) has non-constant weights"):
        quantize(m, np.random.default_rng(0).normal(size=(16, 4)).astype(np.float32))


@pytest.mark.parametrize("opts, phrase", [
    (Options(weight_bits="mixed"), "needs --flash-budget"),
    (Options(calibrator="kl"), "--calibrator"),
    (Options(activations="per-channel"), "--activations"),
    (Options(percentile=10.0), "--percentile"),
])
def test_bad_options(opts, phrase):
    with pytest.raises(McucError, match=phrase):
        quantize(zoo.build("float_cnn").model, _good(), opts)


def test_impossible_flash_budget():
    with pytest.raises(McucError, match="cannot be met"):
        quantize(zoo.build("float_cnn").model, _good(), Options(weight_bits="mixed", flash_budget=100))


@pytest.mark.parametrize("content, phrase", [
    (b"not a numpy file", "not a readable .npy file"),
    (None, "no such file"),
])
def test_unreadable_calibration_files(tmp_path, content, phrase):
    p = tmp_path / "calib.npy"
    if content is not None:
        p.write_bytes(content)
    with pytest.raises(McucError, match=phrase):
        load_calibration(p)


def test_npz_is_rejected(tmp_path):
    p = tmp_path / "calib.npz"
    np.savez(p, a=_good())
    with pytest.raises(McucError, match="npz"):
        load_calibration(p)


def test_object_arrays_are_not_unpickled(tmp_path):
    p = tmp_path / "calib.npy"
    np.save(p, np.array([{"a": 1}] * 8, dtype=object), allow_pickle=True)
    with pytest.raises(McucError, match="not a readable"):
        load_calibration(p)
