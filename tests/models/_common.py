"""Shared pieces of the zoo: the model record, the digits data, ORT runner, ONNX helpers."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# Pinned so that models and caches do not change with onnx upgrades.
IR_VERSION = 10
PRODUCER = "mcuc-test-zoo"


@dataclass
class ZooModel:
    """One test model with the inputs to run it on."""

    name: str
    model: onnx.ModelProto
    inputs: np.ndarray | dict[str, np.ndarray]
    labels: np.ndarray | None
    family: str
    pow2: bool
    tvm_reason: str | None
    # Zoo name of the float net this one was quantized from, for accuracy comparisons.
    source: str | None = None

    @property
    def opset(self) -> int:
        return next(o.version for o in self.model.opset_import if o.domain in ("", "ai.onnx"))

    @property
    def ops(self) -> list[str]:
        """Sorted distinct op types, domain-qualified outside the standard domain."""
        return sorted({(f"{n.domain}:" if n.domain not in ("", "ai.onnx") else "") + n.op_type
                       for n in self.model.graph.node})


@functools.cache
def digits_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """sklearn digits as float32 (N,1,8,8) in [0,1], split 70/30 stratified with seed 0."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.data.astype(np.float32) / 16.0).reshape(-1, 1, 8, 8)
    y = d.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)
    for a in (x_tr, x_te, y_tr, y_te):
        a.setflags(write=False)
    return x_tr, y_tr, x_te, y_te


def calibration_images(n: int = 100) -> np.ndarray:
    return digits_split()[0][:n]


def fixed_batch_one(model: onnx.ModelProto, name: str) -> bool:
    vi = next(i for i in model.graph.input if i.name == name)
    dims = vi.type.tensor_type.shape.dim
    return len(dims) > 0 and dims[0].HasField("dim_value") and dims[0].dim_value == 1


def run_ort(model: onnx.ModelProto | bytes, inputs: np.ndarray | dict[str, np.ndarray]) -> list[np.ndarray]:
    """Run with onnxruntime, graph optimizations off; loops over samples when batch is fixed to 1."""
    import onnxruntime as ort

    if isinstance(model, bytes):
        model = onnx.load_from_string(model)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    feeds = dict(inputs) if isinstance(inputs, dict) else {names[0]: inputs}
    n = len(next(iter(feeds.values())))
    if n > 1 and any(fixed_batch_one(model, k) for k in feeds):
        runs = [sess.run(None, {k: v[i:i + 1] for k, v in feeds.items()}) for i in range(n)]
        return [np.concatenate([r[j] for r in runs]) for j in range(len(runs[0]))]
    return sess.run(None, feeds)


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float((logits.reshape(len(labels), -1).argmax(1) == labels).mean())


def is_pow2(a: np.ndarray) -> bool:
    a = np.asarray(a, np.float64).ravel()
    if not np.all(np.isfinite(a)) or np.any(a <= 0):
        return False
    m, _ = np.frexp(a)
    return bool(np.all(m == 0.5))


def all_scales_pow2(model: onnx.ModelProto) -> bool:
    """True if the model quantizes and every scale of its Q/DQ (and QONNX Quant) nodes is a constant power
    of two; False for float models and QOperator ops."""
    consts = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for n in model.graph.node:
        if n.op_type == "Constant" and n.attribute[0].name == "value":
            consts[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
    quantized = False
    for n in model.graph.node:
        if n.op_type in ("QuantizeLinear", "DequantizeLinear", "Quant", "IntQuant", "BipolarQuant"):
            scale = n.input[1]
        elif n.op_type.startswith("QLinear") or n.op_type == "QGemm":
            return False
        else:
            continue
        if scale not in consts or not is_pow2(consts[scale]):
            return False
        quantized = True
    return quantized


def finalize(model: onnx.ModelProto, producer: str = PRODUCER, producer_version: str = "1") -> onnx.ModelProto:
    """Strip what varies between runs or machines (doc strings, metadata), pin producer and IR version."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    model.doc_string = ""
    model.graph.doc_string = ""
    del model.metadata_props[:]
    model.producer_name = producer
    model.producer_version = producer_version
    model.ir_version = IR_VERSION
    model.model_version = 0
    model.domain = ""
    for n in model.graph.node:
        n.doc_string = ""
    for coll in (model.graph.input, model.graph.output, model.graph.value_info):
        for v in coll:
            v.doc_string = ""
    for t in model.graph.initializer:
        t.doc_string = ""
    onnx.checker.check_model(model)
    return model


def fold_constants(model: onnx.ModelProto, keep: set[str] = frozenset()) -> onnx.ModelProto:
    """Evaluate nodes whose inputs are all constant and store their outputs as initializers.

    Used on torch exports whose Pad/Identity plumbing would otherwise hide constant operands.
    Node types in `keep` are left alone.
    """
    from onnx.reference import ReferenceEvaluator

    model = onnx.ModelProto.FromString(model.SerializeToString())
    g = model.graph
    consts = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    graph_inputs = {i.name for i in g.input}
    opsets = list(model.opset_import)
    new_nodes = []
    for node in g.node:
        ins = [i for i in node.input if i]
        if node.op_type not in keep and node.domain in ("", "ai.onnx") and all(i in consts for i in ins) \
                and not any(i in graph_inputs for i in ins):
            sub = helper.make_model(
                helper.make_graph([node], "fold", [], [helper.make_tensor_value_info(o, TensorProto.UNDEFINED, None)
                                                      for o in node.output],
                                  [numpy_helper.from_array(consts[i], i) for i in dict.fromkeys(ins)]),
                opset_imports=opsets)
            outs = ReferenceEvaluator(sub).run(None, {})
            for name, val in zip(node.output, outs):
                consts[name] = np.asarray(val)
            continue
        new_nodes.append(node)
    used = {i for n in new_nodes for i in n.input} | {o.name for o in g.output}
    old_init_names = [t.name for t in g.initializer]
    folded = [k for k in consts if k not in old_init_names]
    inits = [numpy_helper.from_array(consts[k], k) for k in old_init_names + folded if k in used]
    del g.node[:]
    g.node.extend(new_nodes)
    del g.initializer[:]
    g.initializer.extend(inits)
    del g.value_info[:]
    return model


def pow2_scale(max_abs: float, qmax: int) -> float:
    """Smallest power of two s with max_abs / s <= qmax (Brevitas 'po2' scaling with ceil)."""
    return float(2.0 ** np.ceil(np.log2(max(max_abs, 1e-12) / qmax)))


def quantize_np(x: np.ndarray, scale, zp, qmin: int, qmax: int, axis: int | None = None) -> np.ndarray:
    """Round half to even and saturate, as QuantizeLinear does."""
    scale = np.asarray(scale, np.float32)
    zp = np.asarray(zp, np.float32)
    if axis is not None and scale.ndim == 1:
        shape = [1] * x.ndim
        shape[axis] = -1
        scale, zp = scale.reshape(shape), zp.reshape(shape)
    return np.clip(np.rint(x.astype(np.float32) / scale) + zp, qmin, qmax)


def init(name: str, arr, dtype=None) -> TensorProto:
    return numpy_helper.from_array(np.asarray(arr, dtype=dtype), name)


def float_activations(model: onnx.ModelProto, x: np.ndarray) -> dict[str, np.ndarray]:
    """Every float intermediate tensor of `model` on input `x`, by name."""
    m = onnx.shape_inference.infer_shapes(onnx.ModelProto.FromString(model.SerializeToString()))
    types = {v.name: v.type.tensor_type.elem_type for v in m.graph.value_info}
    have = {o.name for o in m.graph.output}
    for n in m.graph.node:
        for o in n.output:
            if o not in have and types.get(o) == TensorProto.FLOAT:
                m.graph.output.append(helper.make_tensor_value_info(o, TensorProto.FLOAT, None))
    outs = run_ort(m, x)
    return {o.name: v for o, v in zip(m.graph.output, outs)} | {m.graph.input[0].name: x}


def set_batch(model: onnx.ModelProto, n: int) -> None:
    """Fix the first dim of every graph input and output to n."""
    for v in list(model.graph.input) + list(model.graph.output):
        d = v.type.tensor_type.shape.dim[0]
        d.Clear()
        d.dim_value = n
