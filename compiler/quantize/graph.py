"""The float model as the quantizer sees it: layers with weights, and where activations are quantized.

``prepare`` returns a cleaned copy of the float model (Constant nodes as initializers,
BatchNormalization folded into the preceding convolution, every layer with a bias so that bias
correction has somewhere to go) and a ``Net`` describing it:

- a *layer* is a Conv, Gemm or MatMul (+ the Add of a constant bias) with constant weights;
- a *point* is a float tensor that gets QuantizeLinear -> DequantizeLinear: the graph inputs and
  the output of every computing op, taken after its Relu / Clip when that is the only consumer
  (so the activation folds into the integer clamp, as mcuc lowers it);
- data movement (Flatten, Reshape, MaxPool, Pad, ...) keeps its input's quantization, so no
  point is placed after it: mcuc moves integers through these ops unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..errors import McucError

COMPUTE = {"Conv", "Gemm", "MatMul", "Add", "Mul", "GlobalAveragePool", "AveragePool", "Sigmoid", "Tanh", "Softmax",
           "Concat"}
ACTIVATION = {"Relu", "Clip"}
MOVEMENT = {"Flatten", "Reshape", "MaxPool", "Transpose", "Squeeze", "Unsqueeze", "Identity", "Dropout", "Pad"}
QUANTIZED_OPS = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "QLinearConv", "QLinearMatMul",
                 "ConvInteger", "MatMulInteger", "QGemm", "QLinearAdd", "QLinearMul", "QLinearGlobalAveragePool",
                 "QLinearAveragePool", "QLinearConcat", "QLinearSoftmax", "QLinearSigmoid", "Quant", "BipolarQuant",
                 "IntQuant", "Trunc"}


@dataclass
class Layer:
    name: str            # the ONNX node name (unique, made so if empty)
    op: str              # Conv, Gemm or MatMul
    input: str           # the float tensor it reads
    weight: str          # initializer names
    bias: str
    out: str             # the layer's float output before any activation (the Add's for MatMul + bias)
    out_axis: int        # the weight axis of output channels
    in_axis: int         # the weight axis of input channels
    groups: int = 1


@dataclass
class Net:
    model: onnx.ModelProto
    layers: list[Layer]
    points: list[str]                       # tensors quantized, in graph order
    source: dict[str, str] = field(default_factory=dict)  # tensor -> the point whose quantization it carries
    signed_hint: dict[str, bool] = field(default_factory=dict)  # point -> can be negative by construction
    input_name: str = ""
    input_shape: list = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)

    def inits(self) -> dict[str, np.ndarray]:
        return {t.name: numpy_helper.to_array(t) for t in self.model.graph.initializer}


def _opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def reject_quantized(model: onnx.ModelProto, where: str) -> None:
    for n in model.graph.node:
        if n.op_type in QUANTIZED_OPS:
            raise McucError(f"the model is already quantized (node {n.name or n.op_type!r} is {n.op_type}); "
                            "mcuc quantize takes a float model: compile this one directly", where=where)
    for t in model.graph.initializer:
        if t.data_type in (TensorProto.INT8, TensorProto.UINT8, TensorProto.INT4, TensorProto.UINT4):
            raise McucError(f"the model is already quantized (initializer {t.name!r} holds "
                            f"{TensorProto.DataType.Name(t.data_type).lower()} values); mcuc quantize takes a float model",
                            where=where)


def _attr(node, name, default=None):
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _constants_to_initializers(model: onnx.ModelProto) -> None:
    g = model.graph
    keep = []
    for n in g.node:
        if n.op_type == "Constant" and len(n.attribute) == 1 and n.attribute[0].name == "value":
            t = onnx.TensorProto()
            t.CopyFrom(n.attribute[0].t)
            t.name = n.output[0]
            g.initializer.append(t)
        else:
            keep.append(n)
    del g.node[:]
    g.node.extend(keep)


def _fold_batchnorm(model: onnx.ModelProto, where: str) -> int:
    """BatchNormalization after a Conv becomes that Conv's weights and bias (exact in float)."""
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    producers = {o: n for n in g.node for o in n.output}
    uses: dict[str, int] = {}
    for n in g.node:
        for i in n.input:
            uses[i] = uses.get(i, 0) + 1
    folded, drop = 0, set()
    for bn in g.node:
        if bn.op_type != "BatchNormalization":
            continue
        conv = producers.get(bn.input[0])
        if conv is None or conv.op_type != "Conv" or uses.get(bn.input[0], 0) != 1 or conv.input[1] not in inits:
            raise McucError(f"BatchNormalization {bn.name!r} does not follow a convolution, so it cannot be folded",
                            where=where)
        gamma, beta, mean, var = (numpy_helper.to_array(inits[i]).astype(np.float64) for i in bn.input[1:5])
        k = gamma / np.sqrt(var + float(_attr(bn, "epsilon", 1e-5)))
        w = numpy_helper.to_array(inits[conv.input[1]]).astype(np.float64)
        b = (numpy_helper.to_array(inits[conv.input[2]]).astype(np.float64)
             if len(conv.input) > 2 and conv.input[2] else np.zeros(w.shape[0]))
        w_new = (w * k.reshape(-1, *([1] * (w.ndim - 1)))).astype(np.float32)
        b_new = (k * (b - mean) + beta).astype(np.float32)
        wname, bname = f"{conv.input[1]}_bnfold", f"{conv.name or conv.output[0]}_bias_bnfold"
        g.initializer.extend([numpy_helper.from_array(w_new, wname), numpy_helper.from_array(b_new, bname)])
        conv.input[1] = wname
        if len(conv.input) > 2:
            conv.input[2] = bname
        else:
            conv.input.append(bname)
        conv.output[0] = bn.output[0]
        drop.add(id(bn))
        folded += 1
    kept = [n for n in g.node if id(n) not in drop]
    del g.node[:]
    g.node.extend(kept)
    return folded


def _drop_unused_initializers(model: onnx.ModelProto) -> None:
    g = model.graph
    used = {i for n in g.node for i in n.input}
    keep = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(keep)


def _input_shape(model: onnx.ModelProto, where: str) -> tuple[str, list]:
    init_names = {t.name for t in model.graph.initializer}
    ins = [i for i in model.graph.input if i.name not in init_names]
    if len(ins) != 1:
        raise McucError(f"the model has {len(ins)} inputs; mcuc quantize supports models with one input", where=where)
    vi = ins[0]
    if vi.type.tensor_type.elem_type != TensorProto.FLOAT:
        raise McucError(f"input {vi.name!r} is not float32; mcuc quantize takes a float model", where=where)
    dims = [d.dim_value if d.HasField("dim_value") else None for d in vi.type.tensor_type.shape.dim]
    return vi.name, dims


def prepare(model: onnx.ModelProto, *, where: str = "<model>", opset: int | None = None) -> Net:
    """The float model cleaned and analysed (see the module docstring); ``model`` is not changed."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    reject_quantized(model, where)
    if any(o.domain not in ("", "ai.onnx") for o in model.opset_import if o.domain):
        others = sorted(o.domain for o in model.opset_import if o.domain not in ("", "ai.onnx"))
        if any(n.domain not in ("", "ai.onnx") for n in model.graph.node):
            raise McucError(f"custom-domain operators ({', '.join(others)}) are not supported", where=where)
    _constants_to_initializers(model)
    _fold_batchnorm(model, where)
    _drop_unused_initializers(model)
    # Per-axis QuantizeLinear needs opset 13; native int4 tensors need opset 21.
    target = max(_opset(model), 13, opset or 0)
    if target != _opset(model):
        from onnx import version_converter

        try:
            model = version_converter.convert_version(model, target)
        except Exception as e:  # noqa: BLE001  (the converter raises whatever its adapters raise)
            raise McucError(f"cannot convert the model to opset {target} ({type(e).__name__}: "
                            f"{str(e).splitlines()[0] if str(e) else ''})", where=where) from None
    # The newest onnx writes IR versions that runtimes do not load yet; IR 10 holds every opset up
    # to 21 and INT4 tensors, so the model is declared at the least IR version that holds its opsets.
    model.ir_version = max(helper.find_min_ir_version_for(list(model.opset_import)), min(model.ir_version, 10))
    for i, n in enumerate(model.graph.node):
        if not n.name:
            n.name = f"{n.op_type}_{i}"
    input_name, input_shape = _input_shape(model, where)
    net = Net(model=model, layers=[], points=[], input_name=input_name, input_shape=input_shape,
              outputs=[o.name for o in model.graph.output])
    _find_layers(net, where)
    _find_points(net, where)
    return net


def _consumers(model) -> dict[str, list]:
    out: dict[str, list] = {}
    for n in model.graph.node:
        for i in n.input:
            out.setdefault(i, []).append(n)
    return out


def _find_layers(net: Net, where: str) -> None:
    g = net.model.graph
    inits = {t.name: t for t in g.initializer}
    cons = _consumers(net.model)
    new_inits = []
    for n in list(g.node):
        if n.op_type not in ("Conv", "Gemm", "MatMul"):
            continue
        if len(n.input) < 2 or n.input[1] not in inits:
            raise McucError(f"node {n.name!r} ({n.op_type}) has non-constant weights; only constant weights can be quantized",
                            where=where)
        w = numpy_helper.to_array(inits[n.input[1]])
        if n.op_type == "Conv":
            if w.ndim != 4:
                raise McucError(f"node {n.name!r}: only 2-D convolutions are supported", where=where)
            out_axis, in_axis, groups, channels = 0, 1, int(_attr(n, "group", 1)), w.shape[0]
        elif n.op_type == "Gemm":
            if _attr(n, "transA", 0) or _attr(n, "alpha", 1.0) != 1.0 or _attr(n, "beta", 1.0) != 1.0:
                raise McucError(f"node {n.name!r}: Gemm with transA, alpha or beta other than the defaults is not supported",
                                where=where)
            t_b = int(_attr(n, "transB", 0))
            out_axis, in_axis, groups, channels = (0, 1, 1, w.shape[0]) if t_b else (1, 0, 1, w.shape[1])
        else:
            if w.ndim != 2:
                raise McucError(f"node {n.name!r}: MatMul weights must be a matrix", where=where)
            out_axis, in_axis, groups, channels = 1, 0, 1, w.shape[1]
        out = n.output[0]
        if n.op_type == "MatMul":
            users = cons.get(out, [])
            add = users[0] if len(users) == 1 and users[0].op_type == "Add" else None
            other = None if add is None else (add.input[1] if add.input[0] == out else add.input[0])
            if add is not None and other in inits and numpy_helper.to_array(inits[other]).shape == (channels,) \
                    and out not in net.outputs:
                bias, out = other, add.output[0]
            else:
                # A bias-free MatMul gets a zero bias Add so that bias correction can correct it.
                bias = f"{n.name}_bias"
                new_inits.append(numpy_helper.from_array(np.zeros(channels, np.float32), bias))
                mm_out = f"{out}_nobias"
                idx = list(g.node).index(n)
                add = helper.make_node("Add", [mm_out, bias], [out], name=f"{n.name}_bias_add")
                n.output[0] = mm_out
                g.node.insert(idx + 1, add)
        elif len(n.input) > 2 and n.input[2]:
            bias = n.input[2]
            if bias not in inits:
                raise McucError(f"node {n.name!r} ({n.op_type}) has a non-constant bias", where=where)
            b = numpy_helper.to_array(inits[bias])
            if b.shape != (channels,):
                # Gemm broadcasts C ([1, M], a scalar): the quantized bias is one value per channel.
                try:
                    full = np.broadcast_to(b.reshape(-1) if b.size == channels else b.reshape(()), (channels,))
                except ValueError:
                    raise McucError(f"node {n.name!r}: bias of shape {list(b.shape)} for {channels} outputs",
                                    where=where) from None
                bias = f"{n.name}_bias"
                new_inits.append(numpy_helper.from_array(full.astype(np.float32), bias))
                n.input[2] = bias
        else:
            bias = f"{n.name}_bias"
            new_inits.append(numpy_helper.from_array(np.zeros(channels, np.float32), bias))
            while len(n.input) < 2:
                n.input.append("")
            n.input.append(bias)
        net.layers.append(Layer(n.name, n.op_type, n.input[0], n.input[1], bias, out, out_axis, in_axis, groups))
    g.initializer.extend(new_inits)


def _clip_bounds(node, inits) -> tuple[float | None, float | None]:
    if _attr(node, "min") is not None or _attr(node, "max") is not None:
        return _attr(node, "min"), _attr(node, "max")
    vals = []
    for i in list(node.input[1:3]) + [""] * (3 - len(node.input)):
        vals.append(float(numpy_helper.to_array(inits[i])) if i and i in inits else None)
    return vals[0], vals[1]


def _find_points(net: Net, where: str) -> None:
    g = net.model.graph
    inits = {t.name: t for t in g.initializer}
    cons = _consumers(net.model)
    bias_adds = {l.out for l in net.layers if l.op == "MatMul"}
    points: list[str] = [net.input_name]
    source = {net.input_name: net.input_name}
    signed = {net.input_name: True}
    outputs = set(net.outputs)

    def place(t: str, can_be_negative: bool) -> None:
        users = cons.get(t, [])
        if t not in outputs and len(users) == 1 and users[0].op_type in ACTIVATION:
            return  # the activation's output is the point (handled when the activation is visited)
        points.append(t)
        source[t] = t
        signed[t] = can_be_negative

    for n in g.node:
        op = n.op_type
        if op == "MatMul":
            continue  # its bias Add completes the layer
        if op == "Add" and n.output[0] in bias_adds:
            place(n.output[0], True)
            continue
        if op in COMPUTE:
            if op == "Softmax" or op == "Sigmoid":
                place(n.output[0], False)
            elif op in ("GlobalAveragePool", "AveragePool", "Concat"):
                # Averages and concatenations of non-negative tensors stay non-negative.
                place(n.output[0], any(signed.get(source.get(i, ""), True) for i in n.input if i and i not in inits))
            else:
                place(n.output[0], True)
            for i in n.input:
                if i and i not in inits and i not in source:
                    raise McucError(f"node {n.name!r} ({op}) reads {i!r}, which mcuc quantize cannot trace", where=where)
        elif op in ACTIVATION:
            lo = 0.0 if op == "Relu" else _clip_bounds(n, inits)[0]
            if op == "Clip" and any(i and i not in inits for i in n.input[1:]):
                raise McucError(f"node {n.name!r} (Clip) has non-constant bounds", where=where)
            points.append(n.output[0])
            source[n.output[0]] = n.output[0]
            signed[n.output[0]] = lo is None or lo < 0
        elif op in MOVEMENT:
            if n.input[0] not in source:
                raise McucError(f"node {n.name!r} ({op}) reads {n.input[0]!r}, which mcuc quantize cannot trace", where=where)
            if op == "Pad":
                mode = _attr(n, "mode", b"constant")
                value = n.input[2] if len(n.input) > 2 and n.input[2] else None
                if (mode.decode() if isinstance(mode, bytes) else mode) != "constant" or \
                        (value is not None and float(numpy_helper.to_array(inits[value])) != 0.0):
                    raise McucError(f"node {n.name!r}: only zero constant padding keeps its input's quantization",
                                    where=where)
            src = source[n.input[0]]
            for o in n.output:
                source[o] = src
            if n.output[0] in outputs:
                raise McucError(f"graph output {n.output[0]!r} comes from {op}; quantize the model before the final "
                                "data movement", where=where)
        else:
            raise McucError(f"operator {op} (node {n.name!r}) is not supported by mcuc quantize", where=where)
    net.points = points
    net.source = source
    net.signed_hint = signed
