"""Each quantizer option on its own: calibrators, asymmetric activations, BatchNorm folding,
equalization, bias correction, rounding, and the mixed-precision solver."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

import tests.models as zoo
from compiler.quantize import calibrate, mixed
from compiler.quantize.equalize import equalize, pairs
from compiler.quantize.graph import prepare
from compiler.quantize.ptq import quantize
from compiler.quantize.runtime import run

from ._helpers import (
    accuracy,
    calibration,
    compile_onnx,
    digits_test,
    float_accuracy,
    interpreter_outputs,
    quantized,
)


def _bit_exact(name, model):
    x, _ = digits_test(name)
    want = zoo.run_ort(model, x)[0]
    assert np.array_equal(interpreter_outputs(compile_onnx(model), x).astype(np.float64), want.astype(np.float64))


@pytest.mark.parametrize("options", [
    {"calibrator": "minmax"},
    {"calibrator": "percentile", "percentile": 99.9},
    {"activations": "asymmetric"},
    {"bias_correction": False, "weight_rounding": "nearest", "equalization": "never"},
])
def test_options_keep_accuracy_and_exactness(options):
    r = quantized("float_dwsep", **options)
    assert zoo.all_scales_pow2(r.model)
    assert accuracy("float_dwsep", r.model) >= float_accuracy("float_dwsep") - 0.010 + 1e-9
    _bit_exact("float_dwsep", r.model)


def test_asymmetric_activations_use_zero_points():
    r = quantized("float_resnet", activations="asymmetric")
    assert any(q.zp != 0 for q in r.acts.values())
    assert all(q.signed for q in r.acts.values())
    _bit_exact("float_resnet", r.model)


@pytest.mark.parametrize("name", ["float_bn", "float_mlp"])
def test_batchnorm_and_matmul_nets(name):
    r = quantized(name)
    assert not any(n.op_type == "BatchNormalization" for n in r.model.graph.node)
    assert accuracy(name, r.model) >= float_accuracy(name) - 0.010 + 1e-9
    _bit_exact(name, r.model)


def test_batchnorm_folding_keeps_the_float_function():
    m = zoo.build("float_bn").model
    net = prepare(m)
    assert not any(n.op_type == "BatchNormalization" for n in net.model.graph.node)
    x = calibration("float_bn", 64)
    np.testing.assert_allclose(run(net.model, x)["output"], zoo.run_ort(m, x)[0], rtol=1e-4, atol=1e-5)


def test_equalization_keeps_the_float_function_and_balances_ranges():
    net = prepare(zoo.build("float_resnet").model)
    eq, n = equalize(net)
    assert n == len(pairs(net)) == 1
    x = calibration("float_resnet", 64)
    np.testing.assert_allclose(run(eq.model, x)["output"], run(net.model, x)["output"], rtol=1e-4, atol=1e-4)
    l1, l2 = pairs(net)[0]
    w1 = eq.inits()[l1.weight]
    w2 = eq.inits()[l2.weight]
    r1 = np.abs(w1.reshape(len(w1), -1)).max(1)
    r2 = np.abs(np.moveaxis(w2, 1, 0).reshape(w2.shape[1], -1)).max(1)
    np.testing.assert_allclose(r1, r2, rtol=1e-3)


def test_relu6_pairs_are_not_equalized():
    # Clip(0, 6) is not scale-equivariant: equalizing through it would change the function.
    assert pairs(prepare(zoo.build("float_dwsep").model)) == []


def test_bias_correction_and_gptq_lower_the_error():
    plain = quantized("float_resnet", weight_bits="4", bias_correction=False, weight_rounding="nearest", equalization="never")
    corrected = quantized("float_resnet", weight_bits="4", weight_rounding="nearest", equalization="never")
    gptq = quantized("float_resnet", weight_bits="4", equalization="never")
    assert corrected.error < plain.error
    assert gptq.error < corrected.error


def test_calibrators():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, 10000), [40.0]])
    mm = calibrate.activation_qparams(x, calibrator="minmax", asymmetric=False, can_be_negative=True)
    pc = calibrate.activation_qparams(x, calibrator="percentile", asymmetric=False, can_be_negative=True)
    mse = calibrate.activation_qparams(x, calibrator="mse", asymmetric=False, can_be_negative=True)
    assert 40.0 <= 127 * mm.scale < 80.0  # the smallest covering power of two
    assert pc.exp < mm.exp and mse.exp < mm.exp  # one outlier is not worth 6 bits of resolution

    def err(q):
        return np.mean((calibrate.fake_quant(x, q.scale, q.zp, q.qmin, q.qmax) - x) ** 2)
    assert err(mse) <= err(mm) and err(mse) <= err(pc)
    relu = np.abs(x)
    assert not calibrate.activation_qparams(relu, calibrator="mse", asymmetric=False, can_be_negative=False).signed
    asym = calibrate.activation_qparams(relu + 3.0, calibrator="minmax", asymmetric=True, can_be_negative=True)
    assert asym.zp == -128 and asym.signed


def test_per_channel_weight_exponents():
    w = np.stack([np.linspace(-1, 1, 9), np.linspace(-0.01, 0.01, 9)]).reshape(2, 1, 3, 3)
    q, e = calibrate.quantize_weights(w, 0, 8)
    assert e[0] - e[1] >= 6  # each channel its own exponent: the small channel keeps its bits
    np.testing.assert_allclose(q * 2.0 ** e.reshape(-1, 1, 1, 1), w, atol=2.0 ** e.reshape(-1, 1, 1, 1).max())
    _, et = calibrate.quantize_weights(w, 0, 8, per_channel=False)
    assert et[0] == et[1]
    q4, _ = calibrate.quantize_weights(w, 0, 4)
    assert q4.min() >= -8 and q4.max() <= 7


def test_solver_exact_and_greedy_agree_on_a_small_case():
    names = ["a", "b", "c"]
    costs = [[100, 90, 50, 40], [200, 180, 100, 80], [100, 90, 50, 40]]
    sens = [[0, 0.1, 1.0, 2.0], [0, 0.01, 0.2, 0.3], [0, 0.5, 5.0, 6.0]]
    exact = mixed._solve(names, costs, sens, 300, lambda i, k: True)[0]
    assert sum(costs[i][k] for i, k in enumerate(exact)) <= 300
    assert exact[1] in (2, 3) and exact[2] in (0, 1)  # the cheap-to-quantize layer takes the 4 bits
    old = mixed.EXACT_LAYERS
    mixed.EXACT_LAYERS = 0
    try:
        greedy = mixed._solve(names, costs, sens, 300, lambda i, k: True)[0]
    finally:
        mixed.EXACT_LAYERS = old
    assert sum(costs[i][k] for i, k in enumerate(greedy)) <= 300
    assert greedy[1] in (2, 3)


def test_mixed_keeps_ends_at_8_bits_when_the_budget_allows():
    r = quantized("float_resnet", weight_bits="mixed", flash_budget="85%")
    names = [l.name for l in r.net.layers]
    assert r.flash["weights_bytes"] <= r.flash["budget_bytes"]
    assert any(c.bits == 4 for c in r.plan.values())
    assert r.plan[names[0]].bits == 8 and r.plan[names[-1]].bits == 8
    assert not any("below 8 bits" in n for n in r.notes)


def test_fixed_batch_of_one():
    from tests.models._common import set_batch

    m = onnx.ModelProto.FromString(zoo.build("float_cnn").model.SerializeToString())
    set_batch(m, 1)
    r = quantize(m, calibration("float_cnn", 32))
    assert r.model.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1
    _bit_exact("float_cnn", r.model)
