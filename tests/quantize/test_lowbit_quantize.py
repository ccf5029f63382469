"""``--weight-bits ternary|binary``: power-of-two TWN / BWN bodies (first, last and depthwise
layers int8), end to end -- the QDQ model (INT2 initializers, opset 25) runs in onnxruntime and
equals mcuc's interpreter bit for bit, mcuc stores the weights 2 (ternary) or 1 (binary) bits
each, and after the quantization-aware fine-tune of tests/quantize/sweep_models.py a ternary
body loses at most 5 points of digits accuracy against the float net."""

from __future__ import annotations

import functools

import numpy as np
import onnx
import pytest

import tests.models as zoo
from compiler.codegen import generate_project
from compiler.ir import interpreter
from compiler.ir.dtypes import DType
from compiler.quantize.ptq import Options, quantize
from compiler.sim import run_host
from tests.codegen._tools import STRICT, compilers

from ._helpers import (
    NETS,
    accuracy,
    calibration,
    compile_onnx,
    digits_test,
    float_accuracy,
    interpreter_outputs,
    quantized,
    weights_bytes,
)
from .sweep_models import finetuned_zoo_net

POLICY_BITS = {"ternary": 2, "binary": 1}


@functools.cache
def finetuned(name: str, policy: str):
    model = finetuned_zoo_net(name.removeprefix("float_"), POLICY_BITS[policy])
    return quantize(model, calibration(name), Options(weight_bits=policy), where=f"{name} ({policy} fine-tuned)")


def _lowbit_types(graph) -> list[DType]:
    return [n.inputs[1].type.dtype for n in graph.nodes if n.op in ("conv2d", "dense")]


@pytest.mark.parametrize("name", NETS)
def test_ternary_body_within_5_points(name):
    r = finetuned(name, "ternary")
    loss = float_accuracy(name) - accuracy(name, r.model)
    assert loss <= 0.05, f"{name}: ternary body loses {100 * loss:.2f} points"
    kinds = [c.text() for c in r.plan.values()]
    assert kinds[0].startswith("int8") and kinds[-1].startswith("int8") and "ternary per-channel" in kinds


@pytest.mark.parametrize("name,policy", [(n, p) for n in NETS for p in POLICY_BITS])
def test_lowbit_qdq_equals_interpreter_and_packs(name, policy):
    r = finetuned(name, policy)
    g = compile_onnx(r.model)
    x, _ = digits_test(name)
    ort = zoo.run_ort(r.model, x)[0]
    assert np.array_equal(interpreter_outputs(g, x), ort)
    want = DType.INT2 if policy == "ternary" else DType.INT1
    types = _lowbit_types(g)
    assert types.count(want) == sum(1 for c in r.plan.values() if c.bits == POLICY_BITS[policy])
    assert weights_bytes(g) < weights_bytes(compile_onnx(quantized(name).model))


@pytest.mark.parametrize("name", ["float_cnn", "float_resnet"])
def test_binary_body_within_5_points(name):
    loss = float_accuracy(name) - accuracy(name, finetuned(name, "binary").model)
    assert loss <= 0.05, f"{name}: binary body loses {100 * loss:.2f} points"


def test_ptq_ternary_without_finetune_is_exact_too():
    """Straight from the float net (no fine-tune): still bit-exact, ternary values only."""
    r = quantize(zoo.build("float_cnn").model, calibration("float_cnn"), Options(weight_bits="ternary"))
    g = compile_onnx(r.model)
    for n in g.nodes:
        if n.op in ("conv2d", "dense") and n.inputs[1].type.dtype is DType.INT2:
            assert set(np.unique(n.inputs[1].const)) <= {-1, 0, 1}
    x, _ = digits_test("float_cnn")
    assert np.array_equal(interpreter_outputs(g, x), zoo.run_ort(r.model, x)[0])


@pytest.mark.parametrize("cc", compilers())
def test_generated_c_runs_the_ternary_and_binary_nets(tmp_path, cc):
    for name, policy in (("float_dwsep", "ternary"), ("float_resnet", "binary")):
        g = compile_onnx(finetuned(name, policy).model)
        out = tmp_path / f"{name}_{policy}"
        generate_project(g, "host", out, model_name="m", model_sha256="0" * 64)
        x = digits_test(name)[0][:20]
        vals = interpreter.run(g, {g.inputs[0].name: x}, keep=True)
        q = next(n for n in g.nodes if n.op == "quantize")
        got = run_host(out, {g.inputs[0].name: vals[q.out.name]}, cc=cc, cflags=" ".join(STRICT + ["-O2"]))
        src = g.outputs[0].producer.inputs[0]
        assert np.array_equal(got[g.outputs[0].name], vals[src.name])


def test_cli_ternary(tmp_path):
    from click.testing import CliRunner

    from compiler.cli import main

    m = tmp_path / "f.onnx"
    m.write_bytes(finetuned_zoo_net("cnn", 2).SerializeToString())
    c = tmp_path / "c.npy"
    np.save(c, calibration("float_cnn", 64))
    out = tmp_path / "q.onnx"
    res = CliRunner().invoke(main, ["quantize", str(m), "-c", str(c), "-o", str(out), "--weight-bits", "ternary"])
    assert res.exit_code == 0, res.output
    assert "ternary per-channel" in res.output and "int8 per-channel" in res.output
    assert DType.INT2 in _lowbit_types(compile_onnx(onnx.load(str(out))))
    res = CliRunner().invoke(main, ["quantize", str(m), "-c", str(c), "-o", str(out), "--force", "--weight-bits", "binary",
                                    "--flash-budget", "50%"])
    assert res.exit_code == 2 and "--flash-budget applies to --weight-bits mixed, not binary" in res.output
