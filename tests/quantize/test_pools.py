"""The two places power-of-two quantizers traditionally break (NNoM's 98% -> 13% on depthwise nets,
99% -> 50% on ResNets): pools whose window is not a power of two, and residual adds of tensors
with different exponents. Here both get their own calibrated exponents and stay bit-exact with
onnxruntime, because mcuc requantizes a 3x3 average with an integer multiplier and aligns the
exponents of an add with exact shifts."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper

import tests.models as zoo
from compiler.quantize.ptq import quantize

from ._helpers import compile_onnx, interpreter_outputs


def _net(pool: str):
    rng = np.random.default_rng(7)
    inits = [numpy_helper.from_array(rng.normal(0, 0.5, (6, 1, 3, 3)).astype(np.float32), "w1"),
             numpy_helper.from_array(rng.normal(0, 0.1, 6).astype(np.float32), "b1"),
             numpy_helper.from_array(rng.normal(0, 3.0, (6, 6, 1, 1)).astype(np.float32), "w2"),
             numpy_helper.from_array(rng.normal(0, 0.3, (4, 6)).astype(np.float32), "w3"),
             numpy_helper.from_array(np.zeros(4, np.float32), "b3")]
    N = helper.make_node
    nodes = [N("Conv", ["x", "w1", "b1"], ["c1"], kernel_shape=[3, 3], strides=[2, 2], name="conv1"),
             N("Relu", ["c1"], ["r1"], name="relu1"),
             # A branch with a much larger range than its sibling: the add must align exponents.
             N("Conv", ["r1", "w2"], ["c2"], kernel_shape=[1, 1], name="conv2"),
             N("Add", ["r1", "c2"], ["s"], name="add"),
             N("Relu", ["s"], ["r2"], name="relu2"),
             N(pool, ["r2"], ["p"], name="pool", **({"kernel_shape": [3, 3]} if pool == "AveragePool" else {})),
             N("Flatten", ["p"], ["f"], name="flat"),
             N("Gemm", ["f", "w3", "b3"], ["y"], transB=1, name="fc")]
    g = helper.make_graph(nodes, "pools", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 1, 7, 7])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def test_nine_element_pools_and_residual_adds_are_bit_exact():
    x = np.random.default_rng(1).uniform(0, 1, (300, 1, 7, 7)).astype(np.float32)
    for pool in ("GlobalAveragePool", "AveragePool"):
        r = quantize(_net(pool), x[:200])
        exps = {k: q.exp for k, q in r.acts.items()}
        assert exps["c2"] != exps["r1"]  # the add really aligns two exponents
        g = compile_onnx(r.model)
        assert {n.op for n in g.nodes} >= {"avgpool", "add"}
        want = zoo.run_ort(r.model, x)[0]
        assert np.array_equal(interpreter_outputs(g, x).astype(np.float64), want.astype(np.float64))
