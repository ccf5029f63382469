"""Single-op QDQ graphs with edge-case attributes, interpreter against onnxruntime.

Each case is ``x -Q-DQ- OP -Q-DQ- y`` (weights as int8 initializers with their own
DequantizeLinear) built with onnx.helper, run on random inputs. Same tolerance as the zoo: at
least 99.9% equal and never more than one step apart; power-of-two scales bit-exact.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from compiler.ir import interpreter
from compiler.pipeline import compile_model

import tests.models as zoo

RNG_SEED = 11


def _qdq_model(op_nodes, in_shape, out_shape, inits, pow2=False, opset=17, out_scale=6.4467 / 127, check=True):
    # Scales as a calibrator produces them (range / 127). Round decimal scales (0.037, 0.05) would
    # put many exact products within float32 precision of a rounding tie, where onnxruntime's
    # float arithmetic lands on the tie and mcuc's exact arithmetic does not.
    s_in = np.float32(2.0**-5 if pow2 else 4.7221 / 127)
    s_out = np.float32(2.0**-4 if pow2 else out_scale)
    base = [
        numpy_helper.from_array(s_in, "s_in"), numpy_helper.from_array(np.int8(3), "z_in"),
        numpy_helper.from_array(s_out, "s_out"), numpy_helper.from_array(np.int8(-2), "z_out"),
    ]
    nodes = [helper.make_node("QuantizeLinear", ["x", "s_in", "z_in"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "s_in", "z_in"], ["xd"])]
    nodes += op_nodes
    nodes += [helper.make_node("QuantizeLinear", ["o", "s_out", "z_out"], ["oq"]),
              helper.make_node("DequantizeLinear", ["oq", "s_out", "z_out"], ["y"])]
    g = helper.make_graph(nodes, "op", [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)], base + inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name="mcuc-tests")
    m.ir_version = 8
    if check:
        onnx.checker.check_model(m, full_check=True)
    return onnx.shape_inference.infer_shapes(m)


def _weights(name, shape, axis_len, pow2):
    rng = np.random.default_rng(abs(hash(name)) % 1000)
    w = rng.integers(-127, 128, shape).astype(np.int8)
    s = (2.0 ** -rng.integers(6, 9, axis_len)) if pow2 else rng.uniform(0.003, 0.02, axis_len)
    inits = [numpy_helper.from_array(w, f"{name}_q"), numpy_helper.from_array(s.astype(np.float32), f"{name}_s"),
             numpy_helper.from_array(np.zeros(axis_len, np.int8), f"{name}_z")]
    node = helper.make_node("DequantizeLinear", [f"{name}_q", f"{name}_s", f"{name}_z"], [name], axis=0)
    return inits, node


def conv_case(pow2, **attrs):
    cin, cout, k = 4, attrs.pop("cout", 6), attrs.pop("k", (3, 3))
    group = attrs.get("group", 1)
    inits, wnode = _weights("w", (cout, cin // group, *k), cout, pow2)
    node = helper.make_node("Conv", ["xd", "w"], ["o"], kernel_shape=list(k), **attrs)
    return [wnode, node], inits


CASES = {
    "conv_same_upper_s2": lambda p: conv_case(p, auto_pad="SAME_UPPER", strides=[2, 2]),
    "conv_same_lower_s2": lambda p: conv_case(p, auto_pad="SAME_LOWER", strides=[2, 2]),
    "conv_valid_dilated": lambda p: conv_case(p, auto_pad="VALID", dilations=[2, 1]),
    "conv_asym_pads": lambda p: conv_case(p, pads=[0, 2, 1, 0], k=(2, 3)),
    "conv_grouped": lambda p: conv_case(p, group=2, pads=[1, 1, 1, 1]),
    "conv_depthwise_mult2": lambda p: conv_case(p, group=4, cout=8, pads=[1, 1, 1, 1]),
    "maxpool_ceil": lambda p: ([helper.make_node("MaxPool", ["xd"], ["o"], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)], []),
    "maxpool_pads_dilated": lambda p: ([helper.make_node("MaxPool", ["xd"], ["o"], kernel_shape=[2, 2], pads=[1, 1, 0, 0], dilations=[2, 2])], []),
    "avgpool_pads_excl": lambda p: ([helper.make_node("AveragePool", ["xd"], ["o"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])], []),
    "avgpool_pads_incl": lambda p: ([helper.make_node("AveragePool", ["xd"], ["o"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], count_include_pad=1)], []),
    "avgpool_ceil": lambda p: ([helper.make_node("AveragePool", ["xd"], ["o"], kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1)], []),
    "global_avgpool": lambda p: ([helper.make_node("GlobalAveragePool", ["xd"], ["o"])], []),
    "global_maxpool": lambda p: ([helper.make_node("GlobalMaxPool", ["xd"], ["o"])], []),
    "sigmoid": lambda p: ([helper.make_node("Sigmoid", ["xd"], ["o"])], []),
    "tanh": lambda p: ([helper.make_node("Tanh", ["xd"], ["o"])], []),
    "relu": lambda p: ([helper.make_node("Relu", ["xd"], ["o"])], []),
    "clip_0_6": lambda p: ([helper.make_node("Clip", ["xd", "lo", "hi"], ["o"])],
                           [numpy_helper.from_array(np.float32(0), "lo"), numpy_helper.from_array(np.float32(1.5), "hi")]),
    "pad_constant_zero": lambda p: ([helper.make_node("Pad", ["xd", "pads"], ["o"])],
                                    [numpy_helper.from_array(np.array([0, 0, 1, 2, 0, 0, 2, 1], np.int64), "pads")]),
    "transpose_reshape": lambda p: ([helper.make_node("Transpose", ["xd"], ["t"], perm=[0, 2, 3, 1]),
                                     helper.make_node("Reshape", ["t", "shape"], ["o"])],
                                    [numpy_helper.from_array(np.array([1, -1], np.int64), "shape")]),
    "softmax_last_axis": lambda p: ([helper.make_node("Flatten", ["xd"], ["f"]), helper.make_node("Softmax", ["f"], ["o"])], []),
    "add_self_scaled": lambda p: ([helper.make_node("Add", ["xd", "xd"], ["o"])], []),
    "mul_self": lambda p: ([helper.make_node("Mul", ["xd", "xd"], ["o"])], []),
}

IN_SHAPE = [1, 4, 7, 6]


def _out_shape(m):
    for vi in list(m.graph.value_info) + list(m.graph.output):
        if vi.name == "o":
            return [d.dim_value for d in vi.type.tensor_type.shape.dim]
    raise KeyError("o")


@pytest.mark.parametrize("pow2", [False, True], ids=["dyadic", "pow2"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_op_matches_onnxruntime(case, pow2, tmp_path):
    nodes, inits = CASES[case](pow2)
    probe = _qdq_model(nodes, IN_SHAPE, None, inits, pow2, check=False)
    out_shape = _out_shape(probe)
    out_scale = 1.0 / 256 if case.startswith("softmax") else 6.4467 / 127
    m = _qdq_model(nodes, IN_SHAPE, out_shape, inits, pow2, out_scale=out_scale)
    path = tmp_path / "m.onnx"
    onnx.save(m, path)
    g = compile_model(path)
    x = np.random.default_rng(RNG_SEED).uniform(-4, 4, (64, *IN_SHAPE[1:])).astype(np.float32)
    got = interpreter.run(g, {"x": x})["y"]
    want = zoo.run_ort(m, x)[0]
    step = float(np.float32(2.0**-4 if pow2 else out_scale))
    d = np.abs(got.astype(np.float64) - want) / step
    equal = np.mean(d < 1e-3)
    if pow2 and not case.startswith(("sigmoid", "tanh", "softmax", "avgpool", "global_avgpool", "mul")):
        assert equal == 1.0, (equal, d.max())
    assert equal >= 0.999, (equal, d.max())
    assert d.max() <= 1.0 + 1e-4
