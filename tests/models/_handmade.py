"""Hand-built QDQ graphs in the style of Brevitas (QCDQ, power-of-two scales) and tf2onnx (int8 I/O).

Weights come from the trained float nets and are quantized here in numpy. Activation ranges are the
max |x| of each float activation over the 100 calibration images; power-of-two scales are
2**ceil(log2(max/qmax)), Brevitas' fixed-point scaling.

Brevitas QCDQ export: float weight -> QuantizeLinear -> Clip -> DequantizeLinear, where Clip holds
the integer range whenever it is narrower than the storage type (4-bit, or narrow [-127,127]);
activations Relu -> QuantizeLinear (-> Clip) -> DequantizeLinear; bias an int32 initializer with
its own DequantizeLinear at scale s_in * s_w. Batch is fixed to 1, opset 13.

With power-of-two scales every float value in such a graph is an integer times a power of two and
the accumulations here stay below 2**24, so onnxruntime's float execution is exact and a compiler
using integer arithmetic with round-half-to-even requantization can match it bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto, helper

from ._common import (ZooModel, all_scales_pow2, calibration_images, digits_split, finalize, float_activations,
                      init, pow2_scale, quantize_np, set_batch)
from ._float import trained


@dataclass(frozen=True)
class QSpec:
    bits: int
    signed: bool
    narrow: bool = False

    @property
    def lo(self) -> int:
        if not self.signed:
            return 0
        return -(2 ** (self.bits - 1)) + (1 if self.narrow else 0)

    @property
    def hi(self) -> int:
        if not self.signed:
            return 2 ** self.bits - 1 - (1 if self.narrow else 0)
        return 2 ** (self.bits - 1) - 1

    @property
    def np_dtype(self):
        return np.int8 if self.signed else np.uint8

    @property
    def needs_clip(self) -> bool:
        """True if the integer range is narrower than the 8-bit storage type."""
        return (self.lo, self.hi) != ((-128, 127) if self.signed else (0, 255))


@dataclass
class Plan:
    """Power-of-two quantization of a float net: which tensors, at which scale and integer range."""

    model: onnx.ModelProto
    acts: dict[str, tuple[np.ndarray, QSpec]] = field(default_factory=dict)
    weights: dict[str, tuple[np.ndarray, QSpec]] = field(default_factory=dict)
    biases: dict[str, np.ndarray] = field(default_factory=dict)

    def producer(self, name: str):
        return next((n for n in self.model.graph.node if name in n.output), None)

    def act_scale(self, name: str) -> np.ndarray:
        """Scale of the activation feeding `name`, looking through Flatten/Reshape."""
        p = self.producer(name)
        while name not in self.acts and p is not None and p.op_type in ("Flatten", "Reshape"):
            name = p.input[0]
            p = self.producer(name)
        return self.acts[name][0]


def plan_pow2(net: str, wbits: int = 8, wnarrow: bool = True, per_channel: bool = False, abits: int = 8,
              anarrow: bool = False) -> Plan:
    model = trained(net)[0]
    g = model.graph
    acts = float_activations(model, calibration_images())
    plan = Plan(model)
    inp = g.input[0].name
    spec = QSpec(8, True)
    plan.acts[inp] = (np.float32(pow2_scale(np.abs(acts[inp]).max(), spec.hi)), spec)
    consumers: dict[str, list] = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    outputs = {o.name for o in g.output}
    for n in g.node:
        if n.op_type not in ("Relu", "Conv", "Add", "Gemm"):
            continue
        o = n.output[0]
        cons = consumers.get(o, [])
        if o in outputs or (len(cons) == 1 and cons[0].op_type == "Relu"):
            continue
        spec = QSpec(abits, n.op_type != "Relu", anarrow and n.op_type != "Relu")
        plan.acts[o] = (np.float32(pow2_scale(np.abs(acts[o]).max(), spec.hi)), spec)
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in g.initializer}
    for n in g.node:
        if n.op_type not in ("Conv", "Gemm"):
            continue
        w = inits[n.input[1]]
        spec = QSpec(wbits, True, wnarrow)
        if per_channel:
            m = np.abs(w.reshape(len(w), -1)).max(1)
            s = np.array([pow2_scale(v, spec.hi) for v in m], np.float32)
        else:
            s = np.float32(pow2_scale(np.abs(w).max(), spec.hi))
        plan.weights[n.input[1]] = (s, spec)
        if len(n.input) > 2:
            plan.biases[n.input[2]] = (plan.act_scale(n.input[0]) * s).astype(np.float32)
    return plan


def _q_chain(nodes, inits, src: str, scale, spec: QSpec, axis: int | None, tag: str) -> str:
    """Emit QuantizeLinear [-> Clip] -> DequantizeLinear for `src`; returns the dequantized name."""
    scale = np.asarray(scale, np.float32)
    zp = np.zeros(scale.shape, spec.np_dtype)
    inits += [init(f"{tag}_scale", scale), init(f"{tag}_zero_point", zp)]
    kw = {"axis": axis} if axis is not None and scale.ndim == 1 else {}
    q = f"{tag}_q"
    nodes.append(helper.make_node("QuantizeLinear", [src, f"{tag}_scale", f"{tag}_zero_point"], [q],
                                  name=f"{tag}_QuantizeLinear", **kw))
    if spec.needs_clip:
        inits += [init(f"{tag}_clip_min", np.array(spec.lo, spec.np_dtype)),
                  init(f"{tag}_clip_max", np.array(spec.hi, spec.np_dtype))]
        nodes.append(helper.make_node("Clip", [q, f"{tag}_clip_min", f"{tag}_clip_max"], [f"{tag}_clip"],
                                      name=f"{tag}_Clip"))
        q = f"{tag}_clip"
    out = f"{tag}_dq"
    nodes.append(helper.make_node("DequantizeLinear", [q, f"{tag}_scale", f"{tag}_zero_point"], [out],
                                  name=f"{tag}_DequantizeLinear", **kw))
    return out


def emit_qcdq(plan: Plan, opset: int = 13) -> onnx.ModelProto:
    g = plan.model.graph
    floats = {t.name: onnx.numpy_helper.to_array(t) for t in g.initializer}
    nodes, inits, rename = [], [], {}
    inp = g.input[0].name
    rename[inp] = _q_chain(nodes, inits, inp, *plan.acts[inp], None, "input_quant")
    for n in g.node:
        n = onnx.NodeProto.FromString(n.SerializeToString())
        n.input[:] = [rename.get(i, i) for i in n.input]
        if n.op_type in ("Conv", "Gemm"):
            w = n.input[1]
            inits.append(init(w, floats[w]))
            n.input[1] = _q_chain(nodes, inits, w, *plan.weights[w], 0, f"{w}_quant")
            if len(n.input) > 2:
                b = n.input[2]
                bs = plan.biases[b]
                inits += [init(f"{b}_int32", np.rint(floats[b] / bs).astype(np.int32)),
                          init(f"{b}_scale", bs), init(f"{b}_zero_point", np.zeros(bs.shape, np.int32))]
                kw = {"axis": 0} if bs.ndim == 1 else {}
                nodes.append(helper.make_node("DequantizeLinear", [f"{b}_int32", f"{b}_scale", f"{b}_zero_point"],
                                              [f"{b}_dq"], name=f"{b}_DequantizeLinear", **kw))
                n.input[2] = f"{b}_dq"
        else:
            for i in n.input:
                if i in floats and i not in {t.name for t in inits}:
                    inits.append(init(i, floats[i]))
        nodes.append(n)
        o = n.output[0]
        if o in plan.acts:
            rename[o] = _q_chain(nodes, inits, o, *plan.acts[o], None, f"{o.strip('/').replace('/', '_')}_quant")
    graph = helper.make_graph(nodes, "brevitas_qcdq", list(g.input), list(g.output), inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    set_batch(model, 1)
    return finalize(model, producer="brevitas", producer_version="0.11.0")


def brevitas(name: str, net: str, **cfg) -> ZooModel:
    _, _, x_te, y_te = digits_split()
    model = emit_qcdq(plan_pow2(net, **cfg))
    return ZooModel(name=name, model=model, inputs=x_te, labels=y_te, family="brevitas",
                    pow2=all_scales_pow2(model), tvm_reason=None, source=f"float_{net}")


def _asym_int8(lo: float, hi: float) -> tuple[np.float32, np.int8]:
    """TFLite activation quantization: int8 asymmetric, range widened to include 0."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    s = np.float32((hi - lo) / 255.0)
    return s, np.int8(np.clip(np.rint(-128 - lo / s), -128, 127))


def tf2onnx_cnn(pow2: bool) -> ZooModel:
    """A TFLite int8 CNN as tf2onnx converts it: int8 NHWC input and int8 output.

    int8 input (1,8,8,1) -> Transpose to NCHW -> DequantizeLinear; int8 weights per channel with
    DequantizeLinear (axis 0), int32 bias; Transpose back to NHWC before the Reshape because TF
    flattens in NHWC order (the MatMul weight rows are permuted to match); logits QuantizeLinear to
    an int8 graph output. With pow2=False the scales are TFLite's (weights max/127 symmetric,
    activations asymmetric with zero points); with pow2=True symmetric powers of two.
    """
    model = trained("cnn")[0]
    w = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    acts = float_activations(model, calibration_images())
    relu1 = next(n.output[0] for n in model.graph.node if n.op_type == "Relu")
    relu2 = [n.output[0] for n in model.graph.node if n.op_type == "Relu"][1]
    logits = model.graph.output[0].name

    def act_q(a):
        if pow2:
            return np.float32(pow2_scale(np.abs(a).max(), 127)), np.int8(0)
        return _asym_int8(float(a.min()), float(a.max()))

    s_in, zp_in = (np.float32(2.0 ** -7), np.int8(-128)) if pow2 else (np.float32(1 / 255), np.int8(-128))
    s1, zp1 = act_q(acts[relu1])
    s2, zp2 = act_q(acts[relu2])
    s3, zp3 = act_q(acts[logits])

    def wq(a):
        m = np.abs(a.reshape(len(a), -1)).max(1)
        s = np.array([pow2_scale(v, 127) for v in m] if pow2 else m / 127, np.float32)
        return quantize_np(a, s, 0, -127, 127, axis=0).astype(np.int8), s

    w1, ws1 = wq(w["conv1.weight"])
    w2, ws2 = wq(w["conv2.weight"])
    # fc.weight columns are in NCHW flatten order (c,h,w); TF flattens NHWC (h,w,c).
    fc = w["fc.weight"].reshape(10, 16, 3, 3).transpose(0, 2, 3, 1).reshape(10, 144)
    w3, ws3 = wq(fc)
    inits = [
        init("input_scale", s_in), init("input_zero_point", zp_in),
        init("conv1_w", w1), init("conv1_w_scale", ws1), init("conv1_w_zp", np.zeros(8, np.int8)),
        init("conv1_b", np.rint(w["conv1.bias"] / (s_in * ws1)).astype(np.int32)),
        init("conv1_b_scale", (s_in * ws1).astype(np.float32)), init("conv1_b_zp", np.zeros(8, np.int32)),
        init("act1_scale", s1), init("act1_zero_point", zp1),
        init("conv2_w", w2), init("conv2_w_scale", ws2), init("conv2_w_zp", np.zeros(16, np.int8)),
        init("conv2_b", np.rint(w["conv2.bias"] / (s1 * ws2)).astype(np.int32)),
        init("conv2_b_scale", (s1 * ws2).astype(np.float32)), init("conv2_b_zp", np.zeros(16, np.int32)),
        init("act2_scale", s2), init("act2_zero_point", zp2),
        init("fc_w", w3.T.copy()), init("fc_w_scale", ws3), init("fc_w_zp", np.zeros(10, np.int8)),
        init("fc_b", np.rint(w["fc.bias"] / (s2 * ws3)).astype(np.int32)),
        init("fc_b_scale", (s2 * ws3).astype(np.float32)), init("fc_b_zp", np.zeros(10, np.int32)),
        init("out_scale", s3), init("out_zero_point", zp3),
        init("flat_shape", np.array([1, 144], np.int64)),
    ]
    N = helper.make_node
    nodes = [
        N("Transpose", ["serving_default_input:0"], ["input_nchw"], perm=[0, 3, 1, 2], name="Transpose__10"),
        N("DequantizeLinear", ["input_nchw", "input_scale", "input_zero_point"], ["input_dq"], name="dq_input"),
        N("DequantizeLinear", ["conv1_w", "conv1_w_scale", "conv1_w_zp"], ["conv1_w_dq"], axis=0, name="dq_w1"),
        N("DequantizeLinear", ["conv1_b", "conv1_b_scale", "conv1_b_zp"], ["conv1_b_dq"], axis=0, name="dq_b1"),
        N("Conv", ["input_dq", "conv1_w_dq", "conv1_b_dq"], ["conv1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1],
          strides=[1, 1], name="model/conv2d/Relu;model/conv2d/BiasAdd"),
        N("Relu", ["conv1"], ["relu1"], name="Relu1"),
        N("QuantizeLinear", ["relu1", "act1_scale", "act1_zero_point"], ["act1_q"], name="q_act1"),
        N("DequantizeLinear", ["act1_q", "act1_scale", "act1_zero_point"], ["act1_dq"], name="dq_act1"),
        N("DequantizeLinear", ["conv2_w", "conv2_w_scale", "conv2_w_zp"], ["conv2_w_dq"], axis=0, name="dq_w2"),
        N("DequantizeLinear", ["conv2_b", "conv2_b_scale", "conv2_b_zp"], ["conv2_b_dq"], axis=0, name="dq_b2"),
        N("Conv", ["act1_dq", "conv2_w_dq", "conv2_b_dq"], ["conv2"], kernel_shape=[3, 3], pads=[0, 0, 0, 0],
          strides=[2, 2], name="model/conv2d_1/Relu;model/conv2d_1/BiasAdd"),
        N("Relu", ["conv2"], ["relu2"], name="Relu2"),
        N("QuantizeLinear", ["relu2", "act2_scale", "act2_zero_point"], ["act2_q"], name="q_act2"),
        N("DequantizeLinear", ["act2_q", "act2_scale", "act2_zero_point"], ["act2_dq"], name="dq_act2"),
        N("Transpose", ["act2_dq"], ["act2_nhwc"], perm=[0, 2, 3, 1], name="Transpose__22"),
        N("Reshape", ["act2_nhwc", "flat_shape"], ["flat"], name="model/flatten/Reshape"),
        N("DequantizeLinear", ["fc_w", "fc_w_scale", "fc_w_zp"], ["fc_w_dq"], axis=1, name="dq_w3"),
        N("MatMul", ["flat", "fc_w_dq"], ["fc_mm"], name="model/dense/MatMul"),
        N("DequantizeLinear", ["fc_b", "fc_b_scale", "fc_b_zp"], ["fc_b_dq"], axis=0, name="dq_b3"),
        N("Add", ["fc_mm", "fc_b_dq"], ["fc"], name="model/dense/BiasAdd"),
        N("QuantizeLinear", ["fc", "out_scale", "out_zero_point"], ["StatefulPartitionedCall:0"], name="q_out"),
    ]
    graph = helper.make_graph(
        nodes, "tf2onnx",
        [helper.make_tensor_value_info("serving_default_input:0", TensorProto.INT8, [1, 8, 8, 1])],
        [helper.make_tensor_value_info("StatefulPartitionedCall:0", TensorProto.INT8, [1, 10])], inits)
    model = finalize(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]),
                     producer="tf2onnx", producer_version="1.16.1 15c810")
    _, _, x_te, y_te = digits_split()
    x_q = quantize_np(x_te.transpose(0, 2, 3, 1), s_in, zp_in, -128, 127).astype(np.int8)
    return ZooModel(name="tf2onnx_cnn_int8io" + ("_pow2" if pow2 else ""), model=model, inputs=x_q, labels=y_te,
                    family="tf2onnx", pow2=all_scales_pow2(model), tvm_reason=None, source="float_cnn")


def entries() -> dict:
    return {
        "brevitas_cnn_w8a8": lambda: brevitas("brevitas_cnn_w8a8", "cnn"),
        "brevitas_cnn_w4a4_pc": lambda: brevitas("brevitas_cnn_w4a4_pc", "cnn", wbits=4, wnarrow=False,
                                                 per_channel=True, abits=4),
        "brevitas_resnet_w4a8": lambda: brevitas("brevitas_resnet_w4a8", "resnet", wbits=4, per_channel=True,
                                                 anarrow=True),
        "tf2onnx_cnn_int8io": lambda: tf2onnx_cnn(False),
        "tf2onnx_cnn_int8io_pow2": lambda: tf2onnx_cnn(True),
    }
