"""int16 activations for sensitive layers (``--int16-activations``, TFLite's 16x8 scheme with
power-of-two scales): the chosen points are int16 with zero point 0 while weights keep their
bits; ``auto`` picks them by sensitivity under an arena budget measured with mcuc's memory
planner; the QDQ model runs in onnxruntime and agrees with mcuc's interpreter within the
front-end tolerance; the host C (gcc and clang, -Werror) equals the interpreter bit for bit, and
on Cortex-M the DSP kernels give way to the generic ones for int16 operands."""

from __future__ import annotations

import re
import shutil

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto

import tests.models as zoo
from compiler.boards import load_board
from compiler.cli import main
from compiler.codegen import generate_project, render_project
from compiler.errors import McucError
from compiler.ir import interpreter
from compiler.quantize.graph import prepare
from compiler.quantize.ptq import Options, quantize
from compiler.quantize.wide import parse_arena_budget, point_names
from compiler.sim import run_host
from tests.codegen._tools import STRICT, compilers
from tests.frontend.zoo_check import compare, output_steps

from ._helpers import (
    NETS,
    accuracy,
    calibration,
    compile_onnx,
    digits_test,
    float_accuracy,
    quantized,
    weights_bytes,
)

BOARD = "stm32f4-discovery"


def _arena(model, board=BOARD) -> int:
    return render_project(compile_onnx(model), load_board(board), model_name="q",
                          model_sha256="0" * 64).manifest["memory"]["arena_bytes"]


def _logit_error(name, model) -> float:
    """Test-split logit error against the float net, relative to the float logits' variance."""
    x, _ = digits_test(name)
    f = zoo.run_ort(zoo.build(name).model, x)[0].astype(np.float64)
    q = zoo.run_ort(model, x)[0].astype(np.float64)
    return float(np.mean((q - f) ** 2) / np.var(f))


def _int16_points(model) -> set[str]:
    return {t.name[:-4] for t in model.graph.initializer if t.name.endswith("__zp") and t.data_type == TensorProto.INT16}


def _all_points(name) -> str:
    net = prepare(zoo.build(name).model)
    return ",".join(p for p in net.points if p != net.input_name)


@pytest.mark.parametrize("name", NETS)
def test_auto_lowers_the_error_within_the_arena_budget(name):
    r8 = quantized(name)
    r = quantized(name, int16_activations="auto", arena_budget="150%")
    assert r.int16, r.notes
    assert _int16_points(r.model) == set(r.int16)
    for p in r.int16:
        assert r.acts[p].bits == 16 and r.acts[p].zp == 0 and r.acts[p].signed
    # Weights keep their storage: int8 initializers, int16 only on activation zero points.
    assert {t.data_type for t in r.model.graph.initializer if t.name.endswith("__q")} <= {TensorProto.INT8, TensorProto.INT32}
    assert next(o.version for o in r.model.opset_import if o.domain in ("", "ai.onnx")) >= 21
    assert zoo.all_scales_pow2(r.model)
    # The budget, measured here independently of the quantizer's bookkeeping.
    all8 = _arena(r8.model)
    assert r.arena["all_int8_bytes"] == all8
    assert all8 < _arena(r.model) == r.arena["arena_bytes"] <= 1.5 * all8
    # Less error on the calibration data and on the held-out test split; no accuracy lost.
    assert r.error < r8.error
    assert _logit_error(name, r.model) < _logit_error(name, r8.model)
    assert accuracy(name, r.model) >= float_accuracy(name) - 0.010 + 1e-9
    # The sensitivity analysis saw every point but the input; the chosen ones all lower the error.
    net = prepare(zoo.build(name).model)
    assert len(r.act_sensitivity) + sum("stays 8-bit" in n for n in r.notes) == len(net.points) - 1
    assert all(r.act_sensitivity[p] > 0 for p in r.int16)


def test_tight_arena_budget_chooses_less():
    loose = quantized("float_resnet", int16_activations="auto", arena_budget="150%")
    tight = quantized("float_resnet", int16_activations="auto", arena_budget="110%")
    assert tight.arena["arena_bytes"] <= tight.arena["budget_bytes"] < loose.arena["arena_bytes"]
    assert len(tight.int16) < len(loose.int16)


def test_with_mixed_precision_the_flash_budget_still_holds():
    r = quantized("float_resnet", weight_bits="mixed", flash_budget="60%", int16_activations="auto", arena_budget="150%")
    assert r.int16 and any(c.bits == 4 for c in r.plan.values())
    all8 = weights_bytes(compile_onnx(quantized("float_resnet").model))
    assert weights_bytes(compile_onnx(r.model)) == r.flash["weights_bytes"] <= 0.60 * all8
    assert r.error < quantized("float_resnet", weight_bits="mixed", flash_budget="60%").error


@pytest.mark.parametrize("name", NETS)
def test_onnxruntime_agrees_with_the_interpreter(name):
    """The front-end tolerance (at most one output step on at most 0.1% of outputs, top-1
    identical). int16 inputs make the products of a layer reach 2^22 steps, so onnxruntime's
    float32 sums are no longer exact in general; on these nets they agree bit for bit."""
    for model in (quantized(name, int16_activations="auto", arena_budget="150%").model,
                  quantized(name, int16_activations=_all_points(name)).model):
        x, _ = digits_test(name)
        want = zoo.run_ort(model, x)[0]
        g = compile_onnx(model)
        got = interpreter.run(g, {g.inputs[0].name: x})[g.outputs[0].name]
        c = compare([got], [want], output_steps(g))
        assert c["max_steps"] <= 1.0 + 1e-9 and c["equal"] >= 0.999, c
        assert np.array_equal(got.argmax(axis=1), want.argmax(axis=1))


@pytest.fixture(scope="module", params=["float_resnet", "float_dwsep"])
def int16_project(request, tmp_path_factory):
    """Every activation but the input int16: int16-input convs (3x3, depthwise, pointwise),
    dense, the residual add and the global average pool on int16."""
    name = request.param
    r = quantized(name, int16_activations=_all_points(name))
    g = compile_onnx(r.model)
    x, _ = digits_test(name)
    x = x[:16]
    vals = interpreter.run(g, {g.inputs[0].name: x}, keep=True)
    q = next(n for n in g.nodes if n.op == "quantize")
    out = tmp_path_factory.mktemp(f"int16_{name}")
    generate_project(g, "host", out, model_name="q", model_sha256="0" * 64)
    return g, out, {g.inputs[0].name: vals[q.out.name]}, vals


def _integer_output(g, vals):
    v = g.outputs[0]
    return vals[v.producer.inputs[0].name] if v.producer is not None and v.producer.op == "dequantize" else vals[v.name]


def test_int16_ops_are_in_the_graph(int16_project):
    g = int16_project[0]
    i16 = [n for n in g.nodes if n.op in ("conv2d", "dense", "add", "avgpool")
           and any(not v.is_const and v.type.dtype.short == "i16" for v in n.inputs)]
    assert any(n.op == "conv2d" for n in i16) and any(n.op == "dense" for n in i16)
    assert any(n.op in ("add", "avgpool") for n in i16)


@pytest.mark.parametrize("cc", compilers())
def test_host_c_bit_exact_with_the_interpreter(int16_project, cc):
    g, out, feeds, vals = int16_project
    got = run_host(out, feeds, cc=cc, cflags=" ".join(STRICT + ["-O2"]))
    ref = _integer_output(g, vals)
    assert ref.dtype == np.int16
    assert np.array_equal(got[g.outputs[0].name].reshape(ref.shape), ref)


DSP_INTRINSICS = re.compile(r"__(smlad|smlabb|smlatb|sxtb16|sxtab16|uxtb16)\(")


def _cortex_m_int16_resnet(tmp_path):
    """The residual net with signed int8 activations (asymmetric: what the Cortex-M DSP kernels
    take) and int16 on every point but the input and the stem's output."""
    points = _all_points("float_resnet").split(",")[1:]
    r = quantized("float_resnet", activations="asymmetric", int16_activations=",".join(points))
    g = compile_onnx(r.model)
    generate_project(g, BOARD, tmp_path / "fw", model_name="q", model_sha256="0" * 64)
    return g


def test_cortex_m_uses_generic_kernels_for_int16(tmp_path):
    _cortex_m_int16_resnet(tmp_path)
    src = (tmp_path / "fw" / "q_kernels.c").read_text()
    kernels = {}
    for m in re.finditer(r"^\S.*\b(mcuc_(?:conv2d|dense|add)\w*_s(?:8|16)_\w+)\(", src, re.MULTILINE):
        kernels[m.group(1)] = kernels.get(m.group(1), "") + src[m.start():src.find("\n}\n", m.start())]
    s8 = [k for k in kernels if "_s8_" in k]
    s16 = [k for k in kernels if "_s16_" in k]
    # The int8 layer reading the stem's int8 output takes the DSP path; every int16 layer the generic C.
    assert s8 and any(DSP_INTRINSICS.search(kernels[k]) for k in s8)
    assert len(s16) >= 5 and not any(DSP_INTRINSICS.search(kernels[k]) for k in s16)


@pytest.mark.arm_gcc
@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="arm-none-eabi-gcc is not installed")
def test_cortex_m_firmware_bit_exact(tmp_path):
    from compiler.sim.runner import run_firmware

    g = _cortex_m_int16_resnet(tmp_path)
    x, _ = digits_test("float_resnet")
    vals = interpreter.run(g, {g.inputs[0].name: x[:2]}, keep=True)
    q = next(n for n in g.nodes if n.op == "quantize")
    run = run_firmware(tmp_path / "fw", {g.inputs[0].name: vals[q.out.name]}, sim="auto")
    ref = _integer_output(g, vals)
    assert ref.dtype == np.int16
    assert np.array_equal(np.asarray(run.outputs[g.outputs[0].name]).reshape(ref.shape), ref)


def test_names_resolve_to_points():
    net = prepare(zoo.build("float_cnn").model)
    names = point_names(net)
    # A layer's name means its output after the Relu that follows it.
    assert names["/conv1/Conv"] == names["/Relu"] == "/Relu_output_0"
    assert net.input_name not in names
    r = quantized("float_cnn", int16_activations="/conv2/Conv")
    assert r.int16 == ["/Relu_1_output_0"] and _int16_points(r.model) == {"/Relu_1_output_0"}
    assert r.arena["budget_bytes"] is None and r.arena["arena_bytes"] > r.arena["all_int8_bytes"]


def _q(name, **kw):
    return quantize(zoo.build(name).model, calibration(name, 32), Options(**kw), where=name)


@pytest.mark.parametrize("kw,match", [
    ({"int16_activations": "auto"}, "needs --arena-budget"),
    ({"arena_budget": "150%"}, "applies to --int16-activations auto"),
    ({"int16_activations": "/conv9/Conv"}, "no layer or activation named '/conv9/Conv'"),
    ({"int16_activations": "input"}, "graph input, which stays 8-bit"),
    ({"int16_activations": "auto", "arena_budget": "90%"}, "cannot be met"),
    ({"int16_activations": "auto", "arena_budget": "lots"}, "expected bytes"),
])
def test_errors(kw, match):
    with pytest.raises(McucError, match=match):
        _q("float_cnn", **kw)


def test_int16_softmax_input_is_a_clear_error():
    """mcuc's integer softmax reads 8 bits: an int16 input is refused, never saturated."""
    with pytest.raises(McucError, match=r"softmax of a 16-bit input \(i16\) is not supported") as e:
        _q("float_bn", int16_activations="/fc/Gemm")
    assert "\n" not in str(e.value) and "mcuc-quantize-" not in str(e.value)


def test_auto_skips_points_mcuc_cannot_compile():
    r = quantized("float_bn", int16_activations="auto", arena_budget="200%")
    assert "/fc/Gemm_output_0" not in r.int16
    assert any(n.startswith("/fc/Gemm_output_0 stays 8-bit") for n in r.notes)
    compile_onnx(r.model)


def test_parse_arena_budget():
    assert parse_arena_budget("150%", 1000) == 1500 and parse_arena_budget("4096", 1) == 4096


def test_cli(tmp_path):
    m = tmp_path / "float.onnx"
    m.write_bytes(zoo.build("float_cnn").model.SerializeToString())
    c = tmp_path / "calib.npy"
    np.save(c, calibration("float_cnn", 64))
    out = tmp_path / "q.onnx"
    res = CliRunner().invoke(main, ["quantize", str(m), "-c", str(c), "-o", str(out), "--int16-activations", "auto",
                                    "--arena-budget", "150%"])
    assert res.exit_code == 0, res.output
    assert "int16 activations: " in res.output and "i16 2^" in res.output
    assert _int16_points(onnx.load(str(out)))
    res = CliRunner().invoke(main, ["quantize", str(m), "-c", str(c), "-o", str(tmp_path / "r.onnx"),
                                    "--int16-activations", "auto"])
    assert res.exit_code == 2 and len(res.output.strip().splitlines()) == 1 and "--arena-budget" in res.output
    assert not (tmp_path / "r.onnx").exists()
