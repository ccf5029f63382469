"""ONNX front end: load and check a model, then translate it node by node into the IR.

Handlers live one file per op family (conv.py, gemm.py, ...) and register themselves by
(domain, op_type). The result keeps ONNX's float semantics with explicit quantize /
dequantize; the passes in compiler/passes/ lower it to integer arithmetic.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import helper, numpy_helper

from ..errors import McucError
from ..ir.dtypes import ONNX_TO_DTYPE, DType
from ..ir.graph import Graph, TensorType
from . import activation, conv, elementwise, gemm, norm, pool, qoperator, quant, shape  # noqa: F401  (registers handlers)
from .context import FOLD_ONLY, HANDLERS, MS_DOMAIN, QONNX_DOMAINS, ImportContext, NeedConst, NodeView, tensor_to_value

MIN_OPSET = 13
MAX_OPSET = onnx.defs.onnx_opset_version()


def load_model(path: str | Path, input_shapes: dict[str, list[int]] | None = None) -> onnx.ModelProto:
    """Read, check and shape-infer a model; every problem becomes a one-line McucError."""
    path = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise McucError(f"cannot read the model: {e.strerror}", where=path) from None
    if not data:
        raise McucError("invalid ONNX file (the file is empty)", where=path)
    try:
        model = onnx.load_from_string(data)
    except (DecodeError, RuntimeError, ValueError) as e:
        raise McucError(f"invalid ONNX file (protobuf parse failed: {str(e).splitlines()[0] if str(e) else 'truncated or corrupt'})", where=path) from None
    if not model.graph.node and not model.graph.output:
        raise McucError("invalid ONNX file (no graph: truncated, or another format)", where=path)
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as e:
        first = next((ln for ln in str(e).splitlines() if ln.strip()), "invalid model")
        raise McucError(f"ONNX checker rejects the model: {first}", where=path) from None
    opset = default_opset(model)
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise McucError(f"opset {opset} is not supported (mcuc reads opsets {MIN_OPSET} to {MAX_OPSET}; "
                        f"convert with onnx.version_converter)", where=path)
    model = _fix_input_shapes(model, path, input_shapes or {})
    try:
        model = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    except Exception as e:  # onnx raises several types here; all mean the same to the user
        raise McucError(f"shape inference failed: {str(e).splitlines()[0]}", where=path) from None
    return model


def default_opset(model: onnx.ModelProto) -> int:
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return int(imp.version)
    return MIN_OPSET


def _dims(vi) -> list:
    t = vi.type.tensor_type
    if not t.HasField("shape"):
        return []
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in t.shape.dim]


def _fix_input_shapes(model, path, input_shapes):
    inits = {i.name for i in model.graph.initializer}
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        dims = _dims(vi)
        if vi.name in input_shapes:
            want = list(input_shapes[vi.name])
            if len(want) != len(dims):
                raise McucError(f"--input-shape for {vi.name!r} has {len(want)} dims, the model's input has {len(dims)}", where=path)
            new = want
        else:
            new = []
            for k, d in enumerate(dims):
                if isinstance(d, int) and d > 0:
                    new.append(d)
                elif k == 0:
                    new.append(1)  # a symbolic batch: mcuc compiles one sample per call
                else:
                    raise McucError(f"input {vi.name!r} has a dynamic dimension {k} ({d!r}); "
                                    f"give a fixed shape with --input-shape {vi.name}=" + ",".join(
                                        str(x) if isinstance(x, int) and x > 0 else "N" for x in dims), where=path)
        for k, d in enumerate(vi.type.tensor_type.shape.dim):
            d.Clear()
            d.dim_value = int(new[k])
    return model


def import_onnx(path: str | Path, input_shapes: dict[str, list[int]] | None = None) -> Graph:
    model = load_model(path, input_shapes)
    return import_model(model, str(path))


def import_model(model: onnx.ModelProto, path: str = "<model>") -> Graph:
    g = Graph(Path(path).stem if path != "<model>" else (model.graph.name or "model"))
    opset = default_opset(model)
    g.meta.update(source=path, producer=model.producer_name, producer_version=model.producer_version,
                  opset=opset, domains={i.domain or "ai.onnx": int(i.version) for i in model.opset_import})
    ctx = ImportContext(g, path, opset)
    vinfo = {vi.name: vi for vi in list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output)}
    ctx.vinfo.update(vinfo)
    inits = {}
    for t in model.graph.initializer:
        inits[t.name] = t
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        et = vi.type.tensor_type.elem_type
        if et not in ONNX_TO_DTYPE or ONNX_TO_DTYPE[et] in (DType.INT64, DType.BOOL):
            raise McucError(f"input {vi.name!r} has unsupported element type {onnx.TensorProto.DataType.Name(et)}", where=path)
        v = g.value(vi.name, TensorType(tuple(_dims(vi)), ONNX_TO_DTYPE[et]))
        g.inputs.append(v)
        ctx.tensors[vi.name] = v
    for name, t in inits.items():
        ctx.tensors[name] = tensor_to_value(ctx, t)

    for idx, node in enumerate(model.graph.node):
        view = make_view(ctx, node, idx, model)
        outs = translate(ctx, view)
        for oname, v in zip(node.output, outs):
            if not oname or v is None:
                continue
            bind_output(ctx, oname, v)
    for vi in model.graph.output:
        if vi.name not in ctx.tensors:
            raise McucError(f"graph output {vi.name!r} is not produced by any node", where=path)
        v = ctx.tensors[vi.name]
        g.outputs.append(v)
    g.meta["onnx_outputs"] = [vi.name for vi in model.graph.output]
    g.meta["onnx_inputs"] = [v.name for v in g.inputs]
    return g


def bind_output(ctx: ImportContext, oname: str, v) -> None:
    """Give a freshly made value its ONNX name (existing values, e.g. an Identity's input, keep theirs)."""
    if v.producer is not None and v.name not in ctx.tensors.keys() and oname not in ctx.g._names:
        ctx.g._names.discard(v.name)
        v.name = oname
        ctx.g._names.add(oname)
    ctx.tensors[oname] = v


def _domain_opset(model, domain: str) -> int:
    for imp in model.opset_import:
        if (imp.domain or "") == domain or (domain == "" and imp.domain == "ai.onnx"):
            return int(imp.version)
    return 1


def make_view(ctx: ImportContext, node, idx: int, model) -> NodeView:
    domain = "" if node.domain in ("", "ai.onnx") else node.domain
    inputs = []
    for name in node.input:
        if not name:
            inputs.append(None)
            continue
        if name not in ctx.tensors:
            raise McucError(f"input {name!r} is not defined before use (graph not topologically sorted?)",
                            where=f"{ctx.path}: node {node.name or idx!r} ({node.op_type})")
        inputs.append(ctx.tensors[name])
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    return NodeView(node.op_type, domain, node.name or f"{node.op_type}_{idx}", attrs, inputs,
                    list(node.output), _domain_opset(model, domain))


def translate(ctx: ImportContext, view: NodeView) -> list:
    if view.op_type == "Constant" and view.domain == "":
        return [_constant(ctx, view)]
    fn = HANDLERS.get((view.domain, view.op_type))
    if fn is not None:
        try:
            return fn(ctx, view)
        except NeedConst:
            return generic(ctx, view)
    if view.domain == "" and view.op_type in FOLD_ONLY:
        return generic(ctx, view)
    dom = f"{view.domain}." if view.domain else ""
    raise ctx.error(view, f"unsupported op {dom}{view.op_type}")


def generic(ctx: ImportContext, view: NodeView) -> list:
    """Keep the node as-is until constant folding can evaluate it or its operands."""
    vinfo = ctx.vinfo
    types = []
    for oname in view.output_names:
        vi = vinfo.get(oname)
        if vi is not None and vi.type.tensor_type.elem_type in ONNX_TO_DTYPE:
            dims = _dims(vi)
            shape = tuple(d for d in dims) if all(isinstance(d, int) for d in dims) else ()
            types.append(TensorType(shape, ONNX_TO_DTYPE[vi.type.tensor_type.elem_type]))
        else:
            types.append(TensorType((), DType.FLOAT32))
    n = ctx.g.add_node("onnx", list(view.inputs), types,
                       {"op_type": view.op_type, "domain": view.domain, "onnx_attrs": view.attrs,
                        "opset": view.opset, "source": ctx.path},
                       name=view.name)
    return n.outputs


def _constant(ctx: ImportContext, view: NodeView):
    a = view.attrs
    if "value" in a:
        t = a["value"]
        return ctx.const(view.output_names[0], numpy_helper.to_array(t) if not isinstance(t, np.ndarray) else t,
                         ONNX_TO_DTYPE.get(t.data_type) if hasattr(t, "data_type") else None)
    for k, dt in (("value_float", np.float32), ("value_floats", np.float32), ("value_int", np.int64), ("value_ints", np.int64)):
        if k in a:
            return ctx.const(view.output_names[0], np.asarray(a[k], dtype=dt))
    raise ctx.error(view, "Constant without a supported value attribute")


__all__ = ["import_onnx", "import_model", "load_model", "translate", "NeedConst", "NodeView", "MS_DOMAIN", "QONNX_DOMAINS"]
