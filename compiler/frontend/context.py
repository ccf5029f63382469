"""Shared machinery of the ONNX importer: the handler registry and the import context.

A handler translates one ONNX node into IR nodes with ONNX's float semantics (quantization
stays explicit as ``quantize`` / ``dequantize``); the lowering passes turn that into integer
arithmetic. A handler that needs an operand to be constant (a Reshape's shape, a Pad's pads)
and finds it computed raises ``NeedConst``: the node is kept as a generic ``onnx`` op until
constant folding has made the operand constant, and then handed to the handler again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..errors import McucError
from ..ir.dtypes import ONNX_TO_DTYPE, DType
from ..ir.graph import Graph, TensorType, Value
from ..ir.ops import OPS

HANDLERS: dict[tuple[str, str], Callable] = {}

# Ops with no IR counterpart that constant folding evaluates away (shape arithmetic, casts).
FOLD_ONLY = {
    "Shape", "Gather", "Cast", "ConstantOfShape", "Range", "Slice", "Unsqueeze", "Squeeze",
    "Concat", "Mul", "Add", "Sub", "Div", "Floor", "Ceil", "Equal", "Where", "Expand", "Size",
    "ReduceProd", "Not", "Less", "Greater", "Min", "Max", "Neg", "Abs", "Sqrt", "CastLike",
    "Identity", "Reshape", "Transpose", "Tile", "Pow", "Round",
}

QONNX_DOMAINS = {"qonnx.custom_op.general", "finn.custom_op.general", "onnx.brevitas"}
MS_DOMAIN = "com.microsoft"


def handler(*op_types: str, domain: str = ""):
    def deco(fn):
        for op in op_types:
            doms = QONNX_DOMAINS if domain == "qonnx" else {domain}
            for d in doms:
                HANDLERS[(d, op)] = fn
        return fn

    return deco


class NeedConst(Exception):
    """An operand that must be a compile-time constant is not constant (yet)."""


@dataclass
class NodeView:
    """What a handler sees of an ONNX node (also rebuilt from a generic ``onnx`` IR op)."""

    op_type: str
    domain: str
    name: str
    attrs: dict
    inputs: list[Value | None]
    output_names: list[str]
    opset: int

    def attr(self, key, default=None):
        return self.attrs.get(key, default)


@dataclass
class ImportContext:
    g: Graph
    path: str
    opset: int
    tensors: dict[str, Value] = field(default_factory=dict)
    vinfo: dict = field(default_factory=dict)  # ONNX value_info by name, after shape inference

    def where(self, node: NodeView) -> str:
        dom = f"{node.domain}." if node.domain else ""
        return f"{self.path}: node {node.name!r} ({dom}{node.op_type}, opset {node.opset})"

    def error(self, node: NodeView, msg: str) -> McucError:
        return McucError(msg, where=self.where(node))

    # -- operands -----------------------------------------------------------------------------
    def const_array(self, v: Value | None, node: NodeView, what: str, *, optional: bool = False):
        if v is None:
            if optional:
                return None
            raise self.error(node, f"{what} is missing")
        if not v.is_const:
            raise NeedConst(what)
        return v.const

    def const_ints(self, v, node, what, optional=False):
        a = self.const_array(v, node, what, optional=optional)
        return None if a is None else [int(x) for x in np.asarray(a).reshape(-1)]

    # -- construction -------------------------------------------------------------------------
    def emit(self, op: str, inputs: list, attrs: dict | None = None, *, dtype: DType | None = None,
             name: str | None = None, out_name: str | None = None, quant=None, layout=None) -> Value:
        """Add an IR node whose output shape comes from the op's own shape rule."""
        from ..ir.graph import Node

        attrs = dict(attrs or {})
        probe = Node(op, "probe", list(inputs), [], attrs)
        shape = OPS[op].infer(probe)[0] if OPS[op].infer else None
        x = next((i for i in inputs if i is not None), None)
        dt = dtype or (x.type.dtype if x is not None else DType.FLOAT32)
        n = self.g.add_node(op, inputs, [TensorType(shape, dt, quant, layout)], attrs, name=name,
                            out_names=[out_name] if out_name else None)
        return n.out

    def const(self, name: str, data, dtype: DType | None = None) -> Value:
        data = np.asarray(data)
        if dtype is None:
            dtype = DType.FLOAT32 if data.dtype.kind == "f" else ONNX_TO_DTYPE[helper.np_dtype_to_tensor_dtype(data.dtype)]
        return self.g.const(name, data, dtype)


def tensor_to_value(ctx: ImportContext, t: onnx.TensorProto) -> Value:
    if t.data_type not in ONNX_TO_DTYPE:
        raise McucError(f"initializer {t.name!r} has unsupported element type "
                        f"{onnx.TensorProto.DataType.Name(t.data_type)}", where=ctx.path)
    dt = ONNX_TO_DTYPE[t.data_type]
    arr = numpy_helper.to_array(t)
    if dt in (DType.INT4, DType.UINT4, DType.INT2):
        arr = np.asarray(arr).astype(dt.np)
    elif dt is DType.FLOAT32:
        arr = np.asarray(arr, dtype=np.float32)
    return ctx.g.const(t.name, arr, dt)
