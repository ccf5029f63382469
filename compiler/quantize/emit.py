"""Writing the quantized model as standard QDQ ONNX.

- every activation point: ``QuantizeLinear -> DequantizeLinear`` with a scalar 2^e scale;
- every layer's weights: an int8 (or INT4, opset 21; INT2 for ternary / binary, opset 25) initializer with its own per-channel
  DequantizeLinear whose output keeps the float weight's name, so the Conv / Gemm / MatMul is
  untouched;
- every bias: an int32 initializer with a DequantizeLinear at scale s_x * s_w[c].

With power-of-two scales every float in this graph is an integer times a power of two; as long as
the accumulations stay below 2^24 in units of their step (see ``EXACT_BIAS``), onnxruntime's float
execution is exact and mcuc's integer arithmetic matches it bit for bit.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..errors import McucError
from .calibrate import ActQ
from .graph import Net

# Biases are kept within +-2^22 steps of their accumulator so that bias + products stays exactly
# representable in float32 (2^24) for onnxruntime; quantize.py coarsens a channel's weight
# exponent when a bias would not fit.
EXACT_BIAS = 1 << 22
# After an int16 input the bias only has to leave the int32 accumulator room for the products.
WIDE_BIAS = 1 << 28
# int16 QuantizeLinear / DequantizeLinear need opset 21.
INT16_OPSET = 21


def bias_ints(bias: np.ndarray, x_exp: int, w_exps: np.ndarray) -> np.ndarray:
    return np.rint(np.asarray(bias, np.float64) / 2.0 ** (x_exp + np.asarray(w_exps, np.float64))).astype(np.int64)


# Sub-byte initializer types: INT4 (opset 21), and INT2 (opset 25) for ternary weights and for
# binary ones, which ONNX has no 1-bit type for (mcuc stores INT2 weights that are all +-1 as 1 bit).
SUB_BYTE = {4: TensorProto.INT4, 2: TensorProto.INT2, 1: TensorProto.INT2}


def opset_for_bits(bits) -> int | None:
    """The opset a model with weights of these bit widths needs, or None for int8 only."""
    low = min(bits, default=8)
    return None if low >= 8 else (21 if low >= 4 else 25)


def _int_tensor(name: str, values: np.ndarray, bits: int) -> onnx.TensorProto:
    if bits in SUB_BYTE:
        return helper.make_tensor(name, SUB_BYTE[bits], list(values.shape), values.astype(np.int64).reshape(-1).tolist())
    return numpy_helper.from_array(values.astype(np.int8), name)


def emit(net: Net, acts: dict[str, ActQ], weights: dict[str, tuple[np.ndarray, np.ndarray, int]],
         biases: dict[str, np.ndarray], *, producer: str = "mcuc.quantize", version: str = "1") -> onnx.ModelProto:
    """The QDQ model. ``weights[layer] = (integer weights, exponent per channel, bits)``;
    ``biases[layer]`` the float bias (after bias correction)."""
    m = onnx.ModelProto()
    m.CopyFrom(net.model)
    g = m.graph
    replaced = {name for l in net.layers for name in (l.weight, l.bias)}
    seen_w = [l.weight for l in net.layers]
    if len(set(seen_w)) != len(seen_w):
        raise McucError("a weight tensor is shared by several layers; mcuc quantize needs one per layer")
    inits = [t for t in g.initializer if t.name not in replaced]
    kept_inputs = [i for i in g.input if i.name not in replaced]
    pre: list[onnx.NodeProto] = []
    for l in net.layers:
        wint, exps, bits = weights[l.name]
        scale = (2.0 ** exps.astype(np.float64)).astype(np.float32)
        zp = np.zeros(len(exps), np.int8)
        inits += [_int_tensor(f"{l.weight}__q", wint, bits), numpy_helper.from_array(scale, f"{l.weight}__s"),
                  _int_tensor(f"{l.weight}__zp", zp, bits)]
        pre.append(helper.make_node("DequantizeLinear", [f"{l.weight}__q", f"{l.weight}__s", f"{l.weight}__zp"],
                                    [l.weight], name=f"{l.name}_weight_DequantizeLinear", axis=l.out_axis))
        x_exp = acts[net.source[l.input]].exp
        b = bias_ints(biases[l.name], x_exp, exps)
        if np.abs(b).max(initial=0) > np.iinfo(np.int32).max:
            raise McucError(f"layer {l.name!r}: the bias does not fit int32 at scale s_x * s_w")
        bscale = (2.0 ** (x_exp + exps.astype(np.float64))).astype(np.float32)
        inits += [numpy_helper.from_array(b.astype(np.int32), f"{l.bias}__q"), numpy_helper.from_array(bscale, f"{l.bias}__s"),
                  numpy_helper.from_array(np.zeros(len(exps), np.int32), f"{l.bias}__zp")]
        pre.append(helper.make_node("DequantizeLinear", [f"{l.bias}__q", f"{l.bias}__s", f"{l.bias}__zp"], [l.bias],
                                    name=f"{l.name}_bias_DequantizeLinear", axis=0))

    def qdq(src: str, q: ActQ, dst: str, tag: str) -> list[onnx.NodeProto]:
        inits.extend([numpy_helper.from_array(np.array(q.scale, np.float32), f"{tag}__s"),
                      numpy_helper.from_array(np.array(q.zp, q.np_dtype), f"{tag}__zp")])
        return [helper.make_node("QuantizeLinear", [src, f"{tag}__s", f"{tag}__zp"], [f"{tag}__q"], name=f"{tag}_QuantizeLinear"),
                helper.make_node("DequantizeLinear", [f"{tag}__q", f"{tag}__s", f"{tag}__zp"], [dst],
                                 name=f"{tag}_DequantizeLinear")]

    inp = net.input_name
    pre += qdq(inp, acts[inp], f"{inp}__dq", inp)
    nodes = list(pre)
    points = set(net.points) - {inp}
    for n in g.node:
        n = onnx.NodeProto.FromString(n.SerializeToString())
        n.input[:] = [f"{inp}__dq" if i == inp else i for i in n.input]
        after = []
        for k, o in enumerate(n.output):
            if o in points:
                n.output[k] = f"{o}__f"
                after += qdq(f"{o}__f", acts[o], o, o)
        nodes.append(n)
        nodes.extend(after)
    del g.node[:]
    g.node.extend(nodes)
    del g.initializer[:]
    g.initializer.extend(inits)
    del g.input[:]
    g.input.extend(kept_inputs)
    del g.value_info[:]
    m.producer_name = producer
    m.producer_version = version
    return m


def float_name(net: Net, tensor: str) -> str:
    """The name, in the emitted model, of ``tensor``'s float value before its QuantizeLinear."""
    return f"{tensor}__f" if tensor in net.points and tensor != net.input_name else tensor


def input_name(net: Net, tensor: str) -> str:
    """The name, in the emitted model, of the dequantized float value a layer reads for ``tensor``."""
    return f"{tensor}__dq" if tensor == net.input_name else tensor
