"""Tiny QDQ models built with onnx.helper for golden and pass tests (no training, fixed seeds)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _init(name, arr):
    return numpy_helper.from_array(np.asarray(arr), name)


def tiny_qdq_cnn(pow2: bool = False, opset: int = 17) -> onnx.ModelProto:
    """x(f32 1x2x5x5) -Q-DQ- Conv3x3(per-channel int8, int32 bias) - Relu -Q-DQ- GlobalAveragePool
    -Q-DQ- Flatten - Gemm -Q-DQ- y."""
    rng = np.random.default_rng(7)
    s = (lambda v: 2.0 ** np.round(np.log2(v))) if pow2 else (lambda v: v)
    sx, sa, sp, sy = (np.float32(s(v)) for v in (0.02, 0.05, 0.04, 0.1))
    sw = np.asarray(s(rng.uniform(0.004, 0.01, 3)), np.float32)
    w = rng.integers(-127, 128, (3, 2, 3, 3)).astype(np.int8)
    b = rng.integers(-300, 300, 3).astype(np.int32)
    sf = np.float32(s(0.01))
    wf = rng.integers(-127, 128, (4, 3)).astype(np.int8)
    bf = rng.integers(-100, 100, 4).astype(np.int32)
    inits = [
        _init("sx", sx), _init("zx", np.int8(0)), _init("sa", sa), _init("za", np.int8(-128)),
        _init("sp", sp), _init("zp", np.int8(-128)), _init("sy", sy), _init("zy", np.int8(5)),
        _init("w", w), _init("sw", sw), _init("zw", np.zeros(3, np.int8)),
        _init("b", b), _init("sb", (sx * sw).astype(np.float32)), _init("zb", np.zeros(3, np.int32)),
        _init("wf", wf), _init("sf", sf), _init("zf", np.int8(0)),
        _init("bf", bf), _init("sbf", np.float32(sp * sf)), _init("zbf", np.int32(0)),
    ]
    N = helper.make_node
    nodes = [
        N("QuantizeLinear", ["x", "sx", "zx"], ["xq"], name="qx"),
        N("DequantizeLinear", ["xq", "sx", "zx"], ["xd"], name="dqx"),
        N("DequantizeLinear", ["w", "sw", "zw"], ["wd"], name="dqw", axis=0),
        N("DequantizeLinear", ["b", "sb", "zb"], ["bd"], name="dqb", axis=0),
        N("Conv", ["xd", "wd", "bd"], ["c"], name="conv", pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
        N("Relu", ["c"], ["r"], name="relu"),
        N("QuantizeLinear", ["r", "sa", "za"], ["rq"], name="qr"),
        N("DequantizeLinear", ["rq", "sa", "za"], ["rd"], name="dqr"),
        N("GlobalAveragePool", ["rd"], ["p"], name="gap"),
        N("QuantizeLinear", ["p", "sp", "zp"], ["pq"], name="qp"),
        N("DequantizeLinear", ["pq", "sp", "zp"], ["pd"], name="dqp"),
        N("Flatten", ["pd"], ["f"], name="flatten"),
        N("DequantizeLinear", ["wf", "sf", "zf"], ["wfd"], name="dqwf"),
        N("DequantizeLinear", ["bf", "sbf", "zbf"], ["bfd"], name="dqbf"),
        N("Gemm", ["f", "wfd", "bfd"], ["g"], name="fc", transB=1),
        N("QuantizeLinear", ["g", "sy", "zy"], ["yq"], name="qy"),
        N("DequantizeLinear", ["yq", "sy", "zy"], ["y"], name="dqy"),
    ]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 5, 5])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="mcuc-tests")
    m.ir_version = 8
    onnx.checker.check_model(m, full_check=True)
    return m


def tiny_inputs(n: int = 16) -> np.ndarray:
    return np.random.default_rng(3).uniform(-1.5, 2.5, (n, 2, 5, 5)).astype(np.float32)
