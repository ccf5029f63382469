"""Model files the compiler must reject, with the phrases its error message must contain.

Apart from the two unparsable files, each is a valid ONNX model (onnx.checker passes), so the
rejection has to come from the compiler's own checks.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ._common import finalize, init

# Every phrase of the tuple must appear in the error message, case-insensitively.
BAD_ERRORS: dict[str, tuple[str, ...]] = {
    "truncated_file": ("invalid onnx file",),
    "not_onnx": ("invalid onnx file",),
    "unsupported_op_einsum": ("unsupported op", "einsum"),
    "dynamic_spatial_dim": ("dynamic",),
    "float_model": ("needs calibration",),
    "zero_scale": ("invalid scale",),
    "negative_scale": ("invalid scale",),
    "nan_scale": ("invalid scale",),
    "conv3d": ("unsupported", "conv"),
}


def _qdq_cnn() -> onnx.ModelProto:
    from . import build

    return onnx.ModelProto.FromString(build("ort_qdq_cnn_s8_pt").model.SerializeToString())


def truncated_file() -> bytes:
    b = _qdq_cnn().SerializeToString()
    return b[: len(b) // 2]


def not_onnx() -> bytes:
    # A PNG header and chunk: protobuf decoding fails on its wire types.
    return b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x08\x00\x00\x00\x08\x08\x00\x00\x00\x00"


def _with_input_scale(value: float) -> bytes:
    """The QDQ CNN with the scale of its input QuantizeLinear replaced."""
    m = _qdq_cnn()
    q = next(n for n in m.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == m.graph.input[0].name)
    t = next(t for t in m.graph.initializer if t.name == q.input[1])
    t.CopyFrom(numpy_helper.from_array(np.array(value, np.float32), t.name))
    onnx.checker.check_model(m)
    return m.SerializeToString()


def dynamic_spatial_dim() -> bytes:
    m = _qdq_cnn()
    dims = m.graph.input[0].type.tensor_type.shape.dim
    for d, p in zip(dims[2:], ("H", "W")):
        d.Clear()
        d.dim_param = p
    onnx.checker.check_model(m)
    return m.SerializeToString()


def float_model() -> bytes:
    from . import build

    return build("float_cnn").model.SerializeToString()


def _qdq(x: str, tag: str, scale: float, nodes: list, inits: list) -> str:
    inits += [init(f"{tag}_s", np.float32(scale)), init(f"{tag}_zp", np.int8(0))]
    nodes += [helper.make_node("QuantizeLinear", [x, f"{tag}_s", f"{tag}_zp"], [f"{tag}_q"]),
              helper.make_node("DequantizeLinear", [f"{tag}_q", f"{tag}_s", f"{tag}_zp"], [f"{tag}_dq"])]
    return f"{tag}_dq"


def _weight(name: str, shape, nodes: list, inits: list) -> str:
    rng = np.random.default_rng(0)
    inits += [init(name, rng.integers(-127, 128, shape).astype(np.int8)), init(f"{name}_s", np.float32(0.01)),
              init(f"{name}_zp", np.int8(0))]
    nodes.append(helper.make_node("DequantizeLinear", [name, f"{name}_s", f"{name}_zp"], [f"{name}_dq"]))
    return f"{name}_dq"


def _model(nodes, inits, x_shape, y_shape) -> bytes:
    g = helper.make_graph(nodes, "bad", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)], inits)
    return finalize(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])).SerializeToString()


def unsupported_op_einsum() -> bytes:
    nodes, inits = [], []
    x = _qdq("x", "x", 1 / 64, nodes, inits)
    w = _weight("w", (64, 10), nodes, inits)
    nodes.append(helper.make_node("Einsum", [x, w], ["e"], equation="ij,jk->ik"))
    out = _qdq("e", "e", 0.25, nodes, inits)
    nodes.append(helper.make_node("Identity", [out], ["y"]))
    return _model(nodes, inits, [1, 64], [1, 10])


def conv3d() -> bytes:
    nodes, inits = [], []
    x = _qdq("x", "x", 1 / 64, nodes, inits)
    w = _weight("w", (4, 1, 3, 3, 3), nodes, inits)
    nodes.append(helper.make_node("Conv", [x, w], ["c"], kernel_shape=[3, 3, 3], pads=[1] * 6))
    out = _qdq("c", "c", 0.25, nodes, inits)
    nodes.append(helper.make_node("Identity", [out], ["y"]))
    return _model(nodes, inits, [1, 1, 4, 8, 8], [1, 4, 4, 8, 8])


BAD = {
    "truncated_file": truncated_file,
    "not_onnx": not_onnx,
    "unsupported_op_einsum": unsupported_op_einsum,
    "dynamic_spatial_dim": dynamic_spatial_dim,
    "float_model": float_model,
    "zero_scale": lambda: _with_input_scale(0.0),
    "negative_scale": lambda: _with_input_scale(-0.0078125),
    "nan_scale": lambda: _with_input_scale(float("nan")),
    "conv3d": conv3d,
}
