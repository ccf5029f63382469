"""Interpreter semantics against naive loop implementations written from the op definitions."""

from __future__ import annotations

import numpy as np
import pytest

from compiler.ir import interpreter, rounding
from compiler.ir.dtypes import DType
from compiler.ir.graph import Graph, TensorType
from compiler.ir.quant import Requant
from compiler.ir.verifier import verify

from .helpers import int_conv_graph, q


def naive_conv_nhwc(x, w, b, attrs):
    """Direct 7-loop convolution in NHWC / OHWI with zero points and the fused epilogue."""
    n, h, wd, c = x.shape
    o, kh, kw, cg = w.shape
    sh, sw = attrs["strides"]
    dh, dw = attrs["dilations"]
    t, l, bt, r = attrs["pads"]
    g = attrs["groups"]
    oh = (h + t + bt - dh * (kh - 1) - 1) // sh + 1
    ow = (wd + l + r - dw * (kw - 1) - 1) // sw + 1
    acc = np.zeros((n, oh, ow, o), np.int64)
    opg = o // g
    for bi in range(n):
        for y in range(oh):
            for xx in range(ow):
                for oc in range(o):
                    grp = oc // opg
                    s = int(b[oc])
                    for i in range(kh):
                        for j in range(kw):
                            iy, ix = y * sh - t + i * dh, xx * sw - l + j * dw
                            if 0 <= iy < h and 0 <= ix < wd:
                                for ci in range(cg):
                                    xv = int(x[bi, iy, ix, grp * cg + ci]) - attrs["x_zp"]
                                    s += xv * (int(w[oc, i, j, ci]) - int(attrs["w_zp"][oc]))
                    acc[bi, y, xx, oc] = s
    rq = attrs["requant"]
    if rq is None:
        return acc
    out = np.zeros_like(acc)
    for oc in range(o):
        m = int(rq.multiplier[oc]) if rq.per_channel else int(rq.multiplier)
        sft = int(rq.shift[oc]) if rq.per_channel else int(rq.shift)
        out[..., oc] = rounding.multiply_by_quantized_multiplier(acc[..., oc], m, sft)
    lo, hi = attrs["act"]
    return np.clip(out + attrs["out_zp"], lo, hi)


CASES = [
    dict(),
    dict(strides=(1, 1), dil=(1, 1), pads=(0, 0, 0, 0)),
    dict(groups=3, o=6),
    dict(n_in=(2, 5, 5, 4), groups=4, o=4, k=(3, 3), strides=(1, 1), dil=(1, 1), pads=(1, 1, 1, 1)),  # depthwise
    dict(k=(1, 1), strides=(1, 1), dil=(1, 1), pads=(0, 0, 0, 0), o=5),
    dict(per_channel=False),
    dict(requant=False),
    dict(x_dtype=DType.UINT8),
]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_int_conv_matches_naive_loops(case):
    g = int_conv_graph(**CASES[case])
    verify(g)
    node = g.nodes[0]
    x = np.random.default_rng(case).integers(node.inputs[0].type.dtype.qmin, node.inputs[0].type.dtype.qmax + 1,
                                             (2,) + node.inputs[0].type.shape[1:]).astype(node.inputs[0].type.dtype.np)
    got = interpreter.run(g, {"x": x})["conv"]
    want = naive_conv_nhwc(x, node.inputs[1].const, node.inputs[2].const, node.attrs)
    assert np.array_equal(got.astype(np.int64), want)


def test_nchw_and_nhwc_agree():
    a = int_conv_graph(layout="NHWC", seed=3)
    b = int_conv_graph(layout="NCHW", seed=3)
    # Same random weights drawn in each layout's order differ; instead transpose a's weights into b.
    b.nodes[0].inputs[1].const = np.transpose(a.nodes[0].inputs[1].const, (0, 3, 1, 2)).copy()
    b.nodes[0].inputs[2].const = a.nodes[0].inputs[2].const
    b.nodes[0].attrs["requant"] = a.nodes[0].attrs["requant"]
    x = np.random.default_rng(0).integers(-128, 128, (1, 7, 6, 3)).astype(np.int8)
    ya = interpreter.run(a, {"x": x})["conv"]
    yb = interpreter.run(b, {"x": np.transpose(x, (0, 3, 1, 2))})["conv"]
    assert np.array_equal(ya, np.transpose(yb, (0, 2, 3, 1)))


def _unary_graph(op, attrs, in_t, out_t):
    g = Graph(op)
    x = g.value("x", in_t)
    g.inputs.append(x)
    n = g.add_node(op, [x], [out_t], attrs, name="y")
    g.outputs.append(n.out)
    verify(g)
    return g


def test_avgpool_tflite_rounds_raw_values_half_away():
    t = TensorType((1, 1, 2, 1), DType.INT8, q(0.1, -128), "NHWC")
    attrs = {"kernel": (1, 2), "strides": (1, 2), "dilations": (1, 1), "pads": (0, 0, 0, 0), "layout": "NHWC",
             "count_include_pad": False, "in_zp": -128, "sum_offset": 0, "rounding": "away", "requant": None,
             "out_zp": -128, "act": (-128, 127)}
    g = _unary_graph("avgpool", attrs, t, TensorType((1, 1, 1, 1), DType.INT8, q(0.1, -128), "NHWC"))
    x = np.array([[[[-128], [-127]]]], np.int8)  # mean -127.5: TFLite rounds away from zero -> -128
    assert int(interpreter.run(g, {"x": x})["y"].reshape(())) == -128
    g.nodes[0].attrs.update(sum_offset=-128, rounding="even")  # ONNX: centred 0.5 -> 0 (even) -> -128
    assert int(interpreter.run(g, {"x": x})["y"].reshape(())) == -128
    x2 = np.array([[[[-127], [-126]]]], np.int8)  # centred mean 1.5 -> 2 (even) -> -126
    assert int(interpreter.run(g, {"x": x2})["y"].reshape(())) == -126


def test_avgpool_padding_counts_only_valid_elements():
    t = TensorType((1, 2, 2, 1), DType.INT8, q(1.0, 0), "NHWC")
    attrs = {"kernel": (2, 2), "strides": (1, 1), "dilations": (1, 1), "pads": (1, 1, 0, 0), "layout": "NHWC",
             "count_include_pad": False, "in_zp": 0, "sum_offset": 0, "rounding": "away", "requant": None,
             "out_zp": 0, "act": (-128, 127)}
    g = _unary_graph("avgpool", attrs, t, TensorType((1, 2, 2, 1), DType.INT8, q(1.0, 0), "NHWC"))
    x = np.array([10, 20, 30, 41], np.int8).reshape(1, 2, 2, 1)
    y = interpreter.run(g, {"x": x})["y"].reshape(-1).tolist()
    assert y == [10, 15, 20, 25]  # (10+20)/2, (10+30)/2, (10+20+30+41)/4 = 25.25 -> 25


def test_maxpool_pads_never_win():
    t = TensorType((1, 2, 2, 1), DType.INT8, q(1.0, 0), "NHWC")
    attrs = {"kernel": (2, 2), "strides": (1, 1), "dilations": (1, 1), "pads": (1, 1, 0, 0), "layout": "NHWC"}
    g = _unary_graph("maxpool", attrs, t, TensorType((1, 2, 2, 1), DType.INT8, q(1.0, 0), "NHWC"))
    x = np.full((1, 2, 2, 1), -128, np.int8)
    assert interpreter.run(g, {"x": x})["y"].reshape(-1).tolist() == [-128] * 4


def test_requantize_shift_kind_is_half_even():
    t = TensorType((1, 6), DType.INT32, None)
    attrs = {"in_zp": 0, "requant": Requant("shift", 1, 1), "out_zp": 0, "act": (-128, 127)}
    g = _unary_graph("requantize", attrs, t, TensorType((1, 6), DType.INT8, q(0.5, 0)))
    x = np.array([[1, 3, 5, -1, -3, 1000]], np.int32)
    assert interpreter.run(g, {"x": x})["y"].tolist() == [[0, 2, 2, 0, -2, 127]]


def test_lut_indexes_from_type_minimum():
    table = np.arange(256)[::-1] - 128
    t = TensorType((1, 3), DType.INT8, q(0.1, 0))
    g = _unary_graph("lut", {"table": table}, t, t.with_())
    assert interpreter.run(g, {"x": np.array([[-128, 0, 127]], np.int8)})["y"].tolist() == [[127, -1, -128]]


def test_add_tflite_mode_close_to_real_sum():
    from compiler.passes.lower_add import add_params

    qa, qb, qo = q(0.05, -3), q(0.11, 10), q(0.13, -1)
    mode, p = add_params(qa, qb, qo, (-128, 127), 8, "tflite")
    g = Graph("add")
    a = g.value("a", TensorType((1, 256), DType.INT8, qa))
    b = g.value("b", TensorType((1, 256), DType.INT8, qb))
    g.inputs += [a, b]
    n = g.add_node("add", [a, b], [TensorType((1, 256), DType.INT8, qo)], {"mode": mode, "params": p}, name="y")
    g.outputs.append(n.out)
    verify(g)
    rng = np.random.default_rng(0)
    xa, xb = rng.integers(-128, 128, (1, 256)).astype(np.int8), rng.integers(-128, 128, (1, 256)).astype(np.int8)
    y = interpreter.run(g, {"a": xa, "b": xb})["y"].astype(int)
    real = (xa.astype(int) + 3) * 0.05 + (xb.astype(int) - 10) * 0.11
    ideal = np.clip(np.round(real / 0.13) - 1, -128, 127)
    assert np.max(np.abs(y - ideal)) <= 1


def test_batched_run_equals_per_sample_runs():
    g = int_conv_graph(seed=5)
    x = np.random.default_rng(2).integers(-128, 128, (5, 7, 6, 3)).astype(np.int8)
    batched = interpreter.run(g, {"x": x})["conv"]
    single = np.concatenate([interpreter.run(g, {"x": x[i:i + 1]})["conv"] for i in range(5)])
    assert np.array_equal(batched, single)
