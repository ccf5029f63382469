"""The verifier catches broken graphs, naming the node and the stage."""

from __future__ import annotations

import numpy as np
import pytest

from compiler.errors import VerifyError
from compiler.ir.dtypes import DType
from compiler.ir.graph import Graph, TensorType
from compiler.ir.verifier import verify

from .helpers import int_conv_graph, q


def test_valid_conv_passes():
    verify(int_conv_graph(), integer_only=True)


def test_wrong_output_shape_is_caught():
    g = int_conv_graph()
    g.nodes[0].out.type = g.nodes[0].out.type.with_(shape=(1, 2, 2, 2))
    with pytest.raises(VerifyError, match="node conv .conv2d.*shape"):
        verify(g, stage="some-pass")


def test_use_before_definition_is_caught():
    g = Graph("g")
    x = g.value("x", TensorType((1, 4), DType.INT8, q(0.1)))
    g.inputs.append(x)
    a = g.add_node("clamp", [x], [TensorType((1, 4), DType.INT8, q(0.1))], {"lo": 0, "hi": 5}, name="a")
    b = g.add_node("clamp", [a.out], [TensorType((1, 4), DType.INT8, q(0.1))], {"lo": 0, "hi": 5}, name="b")
    g.outputs.append(b.out)
    g.nodes.reverse()
    with pytest.raises(VerifyError, match="before it is defined"):
        verify(g)


def test_float_op_is_rejected_after_lowering():
    g = Graph("g")
    x = g.value("x", TensorType((1, 4), DType.FLOAT32))
    g.inputs.append(x)
    r = g.add_node("relu", [x], [TensorType((1, 4), DType.FLOAT32)], name="r")
    g.outputs.append(r.out)
    verify(g)
    with pytest.raises(VerifyError, match="float arithmetic"):
        verify(g, integer_only=True)


def test_constant_out_of_range_is_caught():
    g = int_conv_graph(w_dtype=DType.INT4)
    w = g.nodes[0].inputs[1]
    w.const = np.full(w.const.shape, 9, np.int8)
    with pytest.raises(VerifyError, match="outside i4"):
        verify(g)


def test_activation_range_must_fit_type():
    g = int_conv_graph()
    g.nodes[0].attrs["act"] = (-200, 127)
    with pytest.raises(VerifyError, match="activation range"):
        verify(g)
