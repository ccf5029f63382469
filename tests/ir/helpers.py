"""Builders for small hand-made integer IR graphs used across tests."""

from __future__ import annotations

import numpy as np

from compiler.ir.dtypes import DType
from compiler.ir.graph import Graph, TensorType
from compiler.ir.quant import QParams, Requant


def q(scale, zp=0, axis=None) -> QParams:
    return QParams(np.asarray(scale, np.float64), np.asarray(zp), axis)


def int_conv_graph(n_in=(1, 7, 6, 3), o=4, k=(3, 2), strides=(2, 1), dil=(1, 2), pads=(1, 0, 2, 1), groups=1,
                   layout="NHWC", seed=0, requant=True, per_channel=True, x_dtype=DType.INT8, w_dtype=DType.INT8):
    rng = np.random.default_rng(seed)
    g = Graph("conv")
    nb, h, w, c = n_in
    xshape = (nb, h, w, c) if layout == "NHWC" else (nb, c, h, w)
    x = g.value("x", TensorType(xshape, x_dtype, q(0.05, 3 if x_dtype is DType.INT8 else 130), layout))
    g.inputs.append(x)
    cg = c // groups
    wshape = (o, k[0], k[1], cg) if layout == "NHWC" else (o, cg, k[0], k[1])
    wdata = rng.integers(w_dtype.qmin, w_dtype.qmax + 1, wshape)
    wq = q(rng.uniform(0.001, 0.02, o) if per_channel else 0.01, np.zeros(o, np.int64) if per_channel else 0, 0 if per_channel else None)
    wv = g.const("w", wdata, w_dtype, wq)
    b = g.const("b", rng.integers(-5000, 5000, o), DType.INT32)
    ratio = 0.05 * np.broadcast_to(wq.scale, (o,)) / 0.1
    rq = Requant.from_ratio(ratio if per_channel else float(ratio[0]), allow_shift=False) if requant else None
    attrs = {"kernel": k, "strides": strides, "dilations": dil, "pads": pads, "groups": groups, "layout": layout,
             "x_zp": int(x.type.quant.zero_point), "w_zp": np.zeros(o, np.int64), "requant": rq,
             "out_zp": -7 if requant else 0, "act": (-100, 120) if requant else None}
    from compiler.ir.ops import OPS
    from compiler.ir.graph import Node

    probe = Node("conv2d", "p", [x, wv, b], [], attrs)
    shape = OPS["conv2d"].infer(probe)[0]
    out_t = TensorType(shape, DType.INT8 if requant else DType.INT32, q(0.1, -7) if requant else None, layout)
    node = g.add_node("conv2d", [x, wv, b], [out_t], attrs, name="conv")
    g.outputs.append(node.out)
    return g
