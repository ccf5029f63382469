"""Structural and type checks of a graph, run after every pass.

``verify(g)`` checks what must hold at every stage; ``verify(g, integer_only=True)`` adds what
must hold before code generation: no float arithmetic except ``quantize`` of a graph input and
``dequantize`` into a graph output, and every integer activation quantized.
"""

from __future__ import annotations

import numpy as np

from ..errors import VerifyError
from .dtypes import DType
from .graph import Graph, Node
from .ops import INTEGER_OPS, OPS, is_int_node


def _fail(msg: str, node: Node | None = None, stage: str | None = None):
    where = f"node {node.name} ({node.op})" if node is not None else "graph"
    if stage:
        where = f"after {stage}: {where}"
    raise VerifyError(msg, where=where)


def verify(g: Graph, *, integer_only: bool = False, stage: str | None = None) -> None:
    names: dict[str, int] = {}
    defined: set[int] = set()
    for v in g.inputs:
        defined.add(v.id)
    for v in g.all_values():
        if v.name in names and names[v.name] != v.id:
            _fail(f"two values are named {v.name!r}", stage=stage)
        names[v.name] = v.id
        if v.is_const:
            defined.add(v.id)
            dt = v.type.dtype
            if dt.is_int and v.const.size and (v.const.min() < dt.qmin or v.const.max() > dt.qmax):
                _fail(f"constant {v.name} holds values outside {dt.short}", stage=stage)
            if dt is DType.INT1 and v.const.size and not np.all(np.abs(v.const) == 1):
                _fail(f"constant {v.name} is binary (i1) and holds a value other than -1 and +1", stage=stage)

    for n in g.nodes:
        od = OPS.get(n.op)
        if od is None:
            _fail(f"unknown op {n.op!r}", n, stage)
        if not (od.min_inputs <= len(n.inputs) <= od.max_inputs):
            _fail(f"takes {od.min_inputs}..{od.max_inputs} inputs, has {len(n.inputs)}", n, stage)
        for i in n.inputs:
            if i is not None and i.id not in defined:
                _fail(f"input %{i.name} is used before it is defined", n, stage)
        for a in od.required:
            if a not in n.attrs:
                _fail(f"missing attribute {a!r}", n, stage)
        is_int = is_int_node(n)
        if is_int and od.float_only and n.op not in ("quantize",):
            _fail("float-only op applied to integers", n, stage)
        if n.op not in ("dequantize", "quantize", "onnx") and not od.movement:
            if is_int and not od.int_only:
                for a in od.int_required:
                    if a not in n.attrs:
                        _fail(f"integer {n.op} lacks attribute {a!r}", n, stage)
            if od.int_only and not is_int:
                _fail("integer-only op applied to floats", n, stage)
        _check_types(n, stage)
        for o in n.outputs:
            if o.id in defined:
                _fail(f"output %{o.name} is defined twice", n, stage)
            defined.add(o.id)
            if o.producer is not n:
                _fail(f"output %{o.name} does not point back at its producer", n, stage)
    for o in g.outputs:
        if o.id not in defined:
            _fail(f"graph output %{o.name} is not computed", stage=stage)
    if integer_only:
        _check_integer_only(g, stage)


def _check_types(n: Node, stage):
    od = OPS[n.op]
    if od.infer is not None and n.op != "onnx":
        try:
            shapes = od.infer(n)
        except Exception as e:  # a malformed node: report it as such
            _fail(f"cannot infer output shape: {e}", n, stage)
        for o, s in zip(n.outputs, shapes):
            if tuple(o.type.shape) != tuple(s):
                _fail(f"output %{o.name} has shape {o.type.shape}, the op gives {tuple(s)}", n, stage)
    x = n.inputs[0] if n.inputs else None
    if n.op == "quantize":
        bound = len(n.inputs) == 1
        if x.type.dtype is not DType.FLOAT32 or not n.out.type.dtype.is_int or (bound and n.out.type.quant is None):
            _fail("quantize maps float32 to a quantized integer tensor", n, stage)
    elif n.op == "dequantize":
        bound = len(n.inputs) == 1
        if not x.type.dtype.is_int or (bound and x.type.quant is None) or n.out.type.dtype is not DType.FLOAT32:
            _fail("dequantize maps a quantized integer tensor to float32", n, stage)
    elif od.movement and n.op != "pad":
        for i in n.inputs:
            if i.type.dtype is not n.out.type.dtype:
                _fail(f"{n.op} must keep the element type", n, stage)
            if i.type.dtype.is_int and i.type.quant is not None and n.out.type.quant is not None:
                if not _same_quant_modulo_axis(n, i):
                    _fail(f"{n.op} inputs and output must share quantization", n, stage)
    if n.op in ("conv2d", "dense") and is_int_node(n):
        w = n.inputs[1]
        if not w.is_const:
            _fail("integer weights must be constant", n, stage)
        if w.type.dtype is DType.INT1 and np.any(np.asarray(n.attrs.get("w_zp", 0)) != 0):
            _fail("binary (i1) weights take no zero point", n, stage)
        if len(n.inputs) > 2 and n.inputs[2] is not None and n.inputs[2].type.dtype is not DType.INT32:
            _fail("integer bias must be int32", n, stage)
        if n.attrs["requant"] is None and n.out.type.dtype is not DType.INT32:
            _fail("without requantization the output is the int32 accumulator", n, stage)
    if od.int_only or (is_int_node(n) and n.op in ("conv2d", "dense", "add", "mul", "avgpool", "requantize")):
        act = n.attrs.get("act")
        dt = n.out.type.dtype
        if act is not None and (act[0] < dt.qmin or act[1] > dt.qmax or act[0] > act[1]):
            _fail(f"activation range {tuple(act)} does not fit {dt.short}", n, stage)


def _same_quant_modulo_axis(n: Node, i) -> bool:
    a, b = i.type.quant, n.out.type.quant
    if not a.per_channel and not b.per_channel:
        return a == b
    return np.array_equal(a.scale, b.scale) and np.array_equal(a.zero_point, b.zero_point)


def _check_integer_only(g: Graph, stage):
    inputs = {v.id for v in g.inputs}
    outputs = {v.id for v in g.outputs}
    for n in g.nodes:
        if n.op == "quantize":
            if n.inputs[0].id not in inputs:
                _fail("quantize is left inside the graph (only graph inputs may be quantized)", n, stage)
            continue
        if n.op == "dequantize":
            if n.out.id not in outputs or len(g.consumers(n.out)) > 0:
                _fail("dequantize is left inside the graph (only graph outputs may be dequantized)", n, stage)
            continue
        if n.op not in INTEGER_OPS or not is_int_node(n):
            _fail("float arithmetic is left after lowering", n, stage)
        for v in list(n.inputs) + list(n.outputs):
            if v is None or v.is_const:
                continue
            if v.type.dtype is DType.FLOAT32:
                _fail(f"%{v.name} is float after lowering", n, stage)
            if v.type.dtype in (DType.INT1, DType.INT2):
                # Binary / ternary values exist only as packed weights (constants).
                _fail(f"%{v.name} is a computed {v.type.dtype.short} tensor: 1- and 2-bit types are for weights only", n, stage)
            if v.type.quant is None and v.type.dtype is not DType.INT32:
                _fail(f"%{v.name} has no quantization", n, stage)
