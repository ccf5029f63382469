"""Binary and ternary weights from QONNX (BipolarQuant; Quant with bit width 2, narrow range):
imported as int1 / int2 weights, lowered with the per-channel scale folded into the
requantization, and run bit-exact against the QONNX reference (all scales are powers of two)."""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx
import pytest
from onnx import helper

import tests.models as zoo
from compiler.codegen import generate_project
from compiler.errors import McucError
from compiler.ir import interpreter
from compiler.ir.dtypes import DType
from compiler.ir.printer import print_graph
from compiler.sim import run_host
from tests.codegen._tools import STRICT, compilers
from tests.frontend.zoo_check import compare, compile_zoo, output_steps, run_interpreter
from tests.models import _qonnx
from tests.models._handmade import plan_pow2


@pytest.fixture(scope="module")
def ternary_cnn():
    """The digits CNN with 2-bit narrow-range (ternary) weights on every layer, as Brevitas exports it."""
    z = zoo.build("qonnx_cnn_w8a8")
    model = _qonnx.emit_qonnx(plan_pow2("cnn", wbits=2, wnarrow=True, per_channel=True))
    return dataclasses.replace(z, name="qonnx_cnn_ternary", model=model, pow2=True)


def _weight_types(g) -> list[DType]:
    return [n.inputs[1].type.dtype for n in g.nodes if n.op in ("conv2d", "dense")]


def test_bipolar_weights_import_as_int1_bit_exact(tmp_path):
    z = zoo.build("qonnx_cnn_bipolar")
    g = compile_zoo(z, tmp_path)
    assert DType.INT1 in _weight_types(g)
    assert "i1<" in print_graph(g)
    res = compare(run_interpreter(g, z), zoo.reference_outputs(z), output_steps(g))
    assert res["equal"] == 1.0, res


def test_ternary_quant_imports_as_int2_bit_exact(ternary_cnn, tmp_path):
    g = compile_zoo(ternary_cnn, tmp_path)
    assert set(_weight_types(g)) == {DType.INT2}
    for n in g.nodes:
        if n.op in ("conv2d", "dense"):
            assert set(np.unique(n.inputs[1].const)) <= {-1, 0, 1}
    res = compare(run_interpreter(g, ternary_cnn), zoo.reference_outputs(ternary_cnn), output_steps(g))
    assert res["equal"] == 1.0, res


@pytest.mark.parametrize("cc", compilers())
def test_bipolar_and_ternary_c_matches_interpreter(ternary_cnn, tmp_path, cc):
    """The generated C (add/subtract kernels on the packed weights) equals the interpreter."""
    for z in (zoo.build("qonnx_cnn_bipolar"), ternary_cnn):
        g = compile_zoo(z, tmp_path)
        out = tmp_path / z.name
        generate_project(g, "host", out, model_name="m", model_sha256="0" * 64)
        x = np.asarray(z.inputs[:16])
        vals = interpreter.run(g, {g.inputs[0].name: x}, keep=True)
        q = next(n for n in g.nodes if n.op == "quantize")
        got = run_host(out, {g.inputs[0].name: vals[q.out.name]}, cc=cc, cflags=" ".join(STRICT + ["-O2"]))
        for o in g.outputs:
            src = o.producer.inputs[0] if o.producer is not None and o.producer.op == "dequantize" else o
            assert np.array_equal(got[o.name], vals[src.name]), (z.name, o.name)


def test_binary_activations_are_a_clear_error(tmp_path):
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4])
    s = onnx.numpy_helper.from_array(np.float32(0.5), "s")
    n = helper.make_node("BipolarQuant", ["x", "s"], ["y"], domain=_qonnx.DOMAIN, name="bq")
    m = helper.make_model(helper.make_graph([n], "g", [x], [y], [s]),
                          opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(_qonnx.DOMAIN, 1)])
    p = tmp_path / "bq.onnx"
    p.write_bytes(m.SerializeToString())
    from compiler.pipeline import compile_model

    with pytest.raises(McucError, match="binary activations") as e:
        compile_model(p)
    assert "\n" not in str(e.value)


def test_verifier_checks_binary_and_ternary_types():
    from compiler.errors import VerifyError
    from compiler.ir.verifier import verify
    from tests.codegen._graphs import Builder

    b = Builder(seed=1)
    b.out(b.conv(h=3, w=3, c=4, o=2, k=(1, 1), wdt=DType.INT1))
    verify(b.g, integer_only=True)
    w = next(v for v in b.g.all_values() if v.is_const and v.type.dtype is DType.INT1)
    w.const = w.const.copy()
    w.const.reshape(-1)[0] = 0
    with pytest.raises(VerifyError, match="binary"):
        verify(b.g)
    w.const.reshape(-1)[0] = 1
    conv = next(n for n in b.g.nodes if n.op == "conv2d")
    conv.attrs["w_zp"] = 1
    with pytest.raises(VerifyError, match="no zero point"):
        verify(b.g)
    conv.attrs["w_zp"] = 0
    conv.out.type.dtype = DType.INT2
    conv.attrs["act"], conv.attrs["out_zp"] = (-1, 1), 0
    with pytest.raises(VerifyError, match="weights only"):
        verify(b.g, integer_only=True)
