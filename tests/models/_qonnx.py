"""QONNX graphs (Quant / BipolarQuant in domain qonnx.custom_op.general) as Brevitas exports them,
and the numpy+onnxruntime reference that runs them.

Quant(x, scale, zeropt, bitwidth; signed, narrow, rounding_mode="ROUND") computes
    y = scale * (round_half_even(clip(x / scale + zeropt, min, max)) - zeropt)
with min/max from bitwidth/signed/narrow (qonnx's min_int/max_int; unsigned narrow drops the top value).
Clipping before rounding equals rounding before clipping because min and max are integers.
BipolarQuant(x, scale) computes scale * (x >= 0 ? 1 : -1).

onnxruntime has no kernels for these, so `qonnx_to_qdq` rewrites the graph into standard ops and
`qonnx_reference` runs the rewrite in onnxruntime:
  * a Quant/BipolarQuant whose inputs are all initializers (weights, biases) is evaluated in numpy
    (float32, as qonnx does) and replaced by the float initializer it produces;
  * an activation Quant with bitwidth <= 8 becomes QuantizeLinear to int8 (signed) or uint8
    (unsigned) with the same scale and zero point, a Clip to [min, max] when that range is narrower
    than the storage type, and DequantizeLinear. QuantizeLinear computes round(x / scale) + zp, which
    equals Quant's round(x / scale + zp) only for an even zp (an odd zp flips which way ties go), so
    odd zero points are refused; saturating to the storage type before the Clip changes nothing;
  * an activation BipolarQuant becomes Where(x >= 0, scale, -scale).
With power-of-two scales every step is exact in float32, so the reference is exact.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ._common import (IR_VERSION, ZooModel, all_scales_pow2, digits_split, finalize, fixed_batch_one, init, run_ort,
                      set_batch)
from ._handmade import Plan, QSpec, plan_pow2

DOMAIN = "qonnx.custom_op.general"
TVM_QONNX = "QONNX Quant/BipolarQuant ops (domain qonnx.custom_op.general) are not ONNX standard ops"


def int_range(bits: int, signed: bool, narrow: bool) -> tuple[int, int]:
    if signed:
        return -(2 ** (bits - 1)) + (1 if narrow else 0), 2 ** (bits - 1) - 1
    return 0, 2 ** bits - 1 - (1 if narrow else 0)


def int_quant(x, scale, zeropt, bits, signed: bool, narrow: bool) -> np.ndarray:
    """QONNX Quant with rounding_mode ROUND, in float32."""
    x, scale, zeropt = (np.asarray(a, np.float32) for a in (x, scale, zeropt))
    lo, hi = int_range(int(bits), signed, narrow)
    y = np.round(np.clip(x / scale + zeropt, lo, hi))
    return ((y - zeropt) * scale).astype(np.float32)


def bipolar_quant(x, scale) -> np.ndarray:
    x, scale = np.asarray(x, np.float32), np.asarray(scale, np.float32)
    return (np.where(x >= 0, np.float32(1), np.float32(-1)) * scale).astype(np.float32)


def _attrs(node) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def qonnx_to_qdq(model: onnx.ModelProto) -> onnx.ModelProto:
    """Rewrite Quant/BipolarQuant into standard ONNX ops (see the module docstring)."""
    g = model.graph
    consts = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    nodes, new_inits = [], {}
    for n in g.node:
        if n.domain != DOMAIN:
            nodes.append(n)
            continue
        if n.op_type not in ("Quant", "IntQuant", "BipolarQuant"):
            raise ValueError(f"no reference for QONNX op {n.op_type}")
        a = _attrs(n)
        signed, narrow = bool(a.get("signed", 1)), bool(a.get("narrow", 0))
        mode = a.get("rounding_mode", b"ROUND")
        if (mode.decode() if isinstance(mode, bytes) else mode).upper() != "ROUND":
            raise ValueError(f"rounding_mode {mode!r} has no QuantizeLinear equivalent")
        x, rest = n.input[0], [consts[i] for i in n.input[1:]]
        out = n.output[0]
        if x in consts:
            new_inits[out] = (bipolar_quant(consts[x], *rest) if n.op_type == "BipolarQuant"
                              else int_quant(consts[x], *rest, signed, narrow))
            consts[out] = new_inits[out]
            continue
        tag = out.replace("/", "_").strip("_")
        if n.op_type == "BipolarQuant":
            s = rest[0].astype(np.float32)
            new_inits[f"{tag}_pos"], new_inits[f"{tag}_neg"] = s, -s
            new_inits[f"{tag}_zero"] = np.zeros((), np.float32)
            nodes += [helper.make_node("GreaterOrEqual", [x, f"{tag}_zero"], [f"{tag}_ge"]),
                      helper.make_node("Where", [f"{tag}_ge", f"{tag}_pos", f"{tag}_neg"], [out])]
            continue
        scale, zeropt, bits = rest
        bits = int(bits)
        if bits > 8 or bits < 2:
            raise ValueError(f"activation Quant with bitwidth {bits} has no 8-bit QuantizeLinear equivalent")
        if np.size(zeropt) != 1 or np.size(scale) != 1 or float(zeropt) % 2 != 0:
            raise ValueError("activation Quant needs a scalar scale and an even integer scalar zero point")
        lo, hi = int_range(bits, signed, narrow)
        dt = np.int8 if signed else np.uint8
        new_inits[f"{tag}_scale"] = np.asarray(scale, np.float32).reshape(())
        new_inits[f"{tag}_zp"] = np.asarray(zeropt).reshape(()).astype(dt)
        qdq = [f"{tag}_scale", f"{tag}_zp"]
        nodes.append(helper.make_node("QuantizeLinear", [x] + qdq, [f"{tag}_q"]))
        q = f"{tag}_q"
        if (lo, hi) != (np.iinfo(dt).min, np.iinfo(dt).max):
            new_inits[f"{tag}_min"], new_inits[f"{tag}_max"] = np.array(lo, dt), np.array(hi, dt)
            nodes.append(helper.make_node("Clip", [q, f"{tag}_min", f"{tag}_max"], [f"{tag}_clip"]))
            q = f"{tag}_clip"
        nodes.append(helper.make_node("DequantizeLinear", [q] + qdq, [out]))
    used = {i for n in nodes for i in n.input}
    inits = [t for t in g.initializer if t.name in used]
    inits += [numpy_helper.from_array(v, k) for k, v in new_inits.items() if k in used]
    opset = max(13, next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")))
    graph = helper.make_graph(nodes, g.name, list(g.input), list(g.output), inits)
    out = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    out.ir_version = min(model.ir_version, IR_VERSION)
    return out


def qonnx_reference(model: onnx.ModelProto, inputs) -> list[np.ndarray]:
    """Outputs of a QONNX graph: the standard-op rewrite run in onnxruntime."""
    return run_ort(qonnx_to_qdq(model), inputs)


def _quant(nodes, inits, src: str, scale, spec: QSpec, tag: str, scale_shape=None) -> str:
    scale = np.asarray(scale, np.float32)
    if scale_shape is not None:
        scale = scale.reshape(scale_shape)
    inits += [init(f"{tag}_scale", scale), init(f"{tag}_zeropt", np.zeros((), np.float32)),
              init(f"{tag}_bitwidth", np.float32(spec.bits))]
    out = f"{tag}_out"
    nodes.append(helper.make_node("Quant", [src, f"{tag}_scale", f"{tag}_zeropt", f"{tag}_bitwidth"], [out],
                                  domain=DOMAIN, name=f"{tag}_Quant", signed=int(spec.signed),
                                  narrow=int(spec.narrow), rounding_mode="ROUND"))
    return out


def emit_qonnx(plan: Plan, bipolar: frozenset[str] = frozenset()) -> onnx.ModelProto:
    """Brevitas-style QONNX graph from a pow2 plan; weights named in `bipolar` get BipolarQuant."""
    g = plan.model.graph
    floats = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    nodes, inits, rename = [], [], {}
    inp = g.input[0].name
    rename[inp] = _quant(nodes, inits, inp, *plan.acts[inp], "input")
    for n in g.node:
        n = onnx.NodeProto.FromString(n.SerializeToString())
        data_in = n.input[0]
        n.input[:] = [rename.get(i, i) for i in n.input]
        if n.op_type in ("Conv", "Gemm"):
            w = n.input[1]
            s, spec = plan.weights[w]
            inits.append(init(w, floats[w]))
            shape = (-1,) + (1,) * (floats[w].ndim - 1) if np.ndim(s) == 1 else None
            if w in bipolar:
                # Binary weights: scale is the mean |w| per output channel, rounded to a power of two.
                m = np.abs(floats[w].reshape(len(floats[w]), -1)).mean(1)
                s = (2.0 ** np.round(np.log2(m))).astype(np.float32)
                inits.append(init(f"{w}_bipolar_scale", s.reshape((-1,) + (1,) * (floats[w].ndim - 1))))
                nodes.append(helper.make_node("BipolarQuant", [w, f"{w}_bipolar_scale"], [f"{w}_bipolar_out"],
                                              domain=DOMAIN, name=f"{w}_BipolarQuant"))
                n.input[1] = f"{w}_bipolar_out"
            else:
                n.input[1] = _quant(nodes, inits, w, s, spec, w, shape)
            if len(n.input) > 2:
                b = n.input[2]
                inits.append(init(b, floats[b]))
                bs = (plan.act_scale(data_in) * s).astype(np.float32)
                n.input[2] = _quant(nodes, inits, b, bs, QSpec(32, True), b)
        else:
            for i in n.input:
                if i in floats and i not in {t.name for t in inits}:
                    inits.append(init(i, floats[i]))
        nodes.append(n)
        o = n.output[0]
        if o in plan.acts:
            rename[o] = _quant(nodes, inits, o, *plan.acts[o], o.strip("/").replace("/", "_"))
    graph = helper.make_graph(nodes, "qonnx", list(g.input), list(g.output), inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(DOMAIN, 1)])
    set_batch(model, 1)
    return finalize(model, producer="brevitas", producer_version="0.11.0")


def qonnx_entry(name: str, net: str, bipolar: frozenset[str] = frozenset(), **cfg) -> ZooModel:
    _, _, x_te, y_te = digits_split()
    model = emit_qonnx(plan_pow2(net, **cfg), bipolar)
    return ZooModel(name=name, model=model, inputs=x_te, labels=y_te,
                    family="qonnx_bipolar" if bipolar else "qonnx", pow2=all_scales_pow2(model),
                    tvm_reason=TVM_QONNX, source=f"float_{net}")


def entries() -> dict:
    return {
        "qonnx_cnn_w8a8": lambda: qonnx_entry("qonnx_cnn_w8a8", "cnn"),
        "qonnx_cnn_w4a4_pc": lambda: qonnx_entry("qonnx_cnn_w4a4_pc", "cnn", wbits=4, wnarrow=False,
                                                 per_channel=True, abits=4),
        "qonnx_resnet_w4a8": lambda: qonnx_entry("qonnx_resnet_w4a8", "resnet", wbits=4, per_channel=True,
                                                 anarrow=True),
        "qonnx_cnn_bipolar": lambda: qonnx_entry("qonnx_cnn_bipolar", "cnn", frozenset({"conv2.weight"}),
                                                 per_channel=True),
    }


def qonnx_numpy_reference(model: onnx.ModelProto, inputs: np.ndarray) -> list[np.ndarray]:
    """Independent check of `qonnx_reference`: onnx's pure-numpy ReferenceEvaluator with Quant and
    BipolarQuant implemented from the formulas above (slow)."""
    from onnx.reference import ReferenceEvaluator
    from onnx.reference.op_run import OpRun

    class Quant(OpRun):
        op_domain = DOMAIN

        def _run(self, x, scale, zeropt, bitwidth, signed=1, narrow=0, rounding_mode="ROUND"):
            return (int_quant(x, scale, zeropt, bitwidth, bool(signed), bool(narrow)),)

    class BipolarQuant(OpRun):
        op_domain = DOMAIN

        def _run(self, x, scale):
            return (bipolar_quant(x, scale),)

    ev = ReferenceEvaluator(model, new_ops=[Quant, BipolarQuant])
    name = model.graph.input[0].name
    if not fixed_batch_one(model, name):
        return ev.run(None, {name: inputs})
    runs = [ev.run(None, {name: inputs[i:i + 1]}) for i in range(len(inputs))]
    return [np.concatenate([r[j] for r in runs]) for j in range(len(runs[0]))]
