"""The zoo itself: every entry builds, is valid, runs, is accurate and is byte-deterministic."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import pytest

from . import BAD, BAD_ERRORS, ZOO, accuracy, all_scales_pow2, build, reference_outputs, run_ort
from ._qonnx import DOMAIN, bipolar_quant, int_quant, qonnx_numpy_reference, qonnx_reference, qonnx_to_qdq

NAMES = list(ZOO)
FAMILIES = {"float", "ort_qdq", "ort_qop", "brevitas", "tf2onnx", "qonnx", "qonnx_bipolar", "torch_ao"}
EXPECT_POW2 = {n for n in NAMES if n.startswith(("brevitas_", "qonnx_"))} | {"tf2onnx_cnn_int8io_pow2"}
QONNX = [n for n in NAMES if n.startswith("qonnx_")]
REPO = Path(__file__).resolve().parents[2]


@functools.cache
def _float_accuracy(source: str) -> float:
    z = build(source)
    return accuracy(run_ort(z.model, z.inputs)[0], z.labels)


@pytest.mark.parametrize("name", NAMES)
def test_entry_is_valid(name):
    z = build(name)
    m = z.model
    assert z.name == name and z.family in FAMILIES
    standard = all(n.domain in ("", "ai.onnx") for n in m.graph.node)
    onnx.checker.check_model(m, full_check=standard)
    feeds = z.inputs if isinstance(z.inputs, dict) else {m.graph.input[0].name: z.inputs}
    assert set(feeds) == {i.name for i in m.graph.input}
    for vi in m.graph.input:
        tt, x = vi.type.tensor_type, feeds[vi.name]
        assert x.dtype == onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type)
        dims = tt.shape.dim
        assert x.ndim == len(dims) and len(x) > 1
        assert [d.dim_value for d in dims[1:]] == list(x.shape[1:])
        assert dims[0].dim_param or dims[0].dim_value == 1
        if z.labels is not None:
            assert len(z.labels) == len(x)
    assert z.pow2 == (name in EXPECT_POW2) == all_scales_pow2(m)
    assert (z.tvm_reason is None) == (z.family not in ("ort_qop", "qonnx", "qonnx_bipolar")
                                      and name != "ort_qdq_cnn_int4")


@pytest.mark.parametrize("name", NAMES)
def test_runs_and_accuracy(name):
    z = build(name)
    outs = reference_outputs(z)
    n = len(next(iter(z.inputs.values())) if isinstance(z.inputs, dict) else z.inputs)
    assert all(len(o) == n for o in outs)
    assert all(np.all(np.isfinite(o)) for o in outs if o.dtype.kind == "f")
    if z.labels is not None:
        acc, ref = accuracy(outs[0].astype(np.float32), z.labels), _float_accuracy(z.source)
        print(f"{name}: accuracy {acc:.4f}, float {z.source} {ref:.4f}")
        assert acc >= ref - 0.03
        assert acc > 0.9


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_bytes(name):
    """A fresh build equals the cached one (which may come from an earlier process)."""
    fresh, cached = ZOO[name](), build(name)
    assert fresh.model.SerializeToString() == cached.model.SerializeToString()
    a, b = fresh.inputs, cached.inputs
    if isinstance(a, dict):
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    else:
        assert np.array_equal(a, b)


@pytest.mark.parametrize("name", sorted(EXPECT_POW2 - set(QONNX)))
def test_pow2_float_execution_is_exact(name):
    """With power-of-two scales onnxruntime's float QDQ path equals its fused integer kernels."""
    import onnxruntime as ort

    z = build(name)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    sess = ort.InferenceSession(z.model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    fused = np.concatenate([sess.run(None, {sess.get_inputs()[0].name: x[None]})[0] for x in z.inputs])
    assert np.array_equal(fused, run_ort(z.model, z.inputs)[0])


@pytest.mark.parametrize("name", QONNX)
def test_qonnx_reference_matches_numpy_evaluator(name):
    z = build(name)
    x = z.inputs[:40]
    got, want = qonnx_reference(z.model, x), qonnx_numpy_reference(z.model, x)
    assert all(np.array_equal(g, w) for g, w in zip(got, want))


def _single_node(op: str, attrs: dict, consts: dict) -> onnx.ModelProto:
    h = onnx.helper
    node = h.make_node(op, ["x", *consts], ["y"], domain=DOMAIN, **attrs)
    g = h.make_graph([node], "q", [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [None])],
                     [h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [None])],
                     [onnx.numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in consts.items()])
    return h.make_model(g, opset_imports=[h.make_opsetid("", 13), h.make_opsetid(DOMAIN, 1)], ir_version=10)


@pytest.mark.parametrize("bits", [2, 4, 8])
@pytest.mark.parametrize("signed", [True, False])
@pytest.mark.parametrize("narrow", [True, False])
@pytest.mark.parametrize("zeropt", [0.0, 2.0])
@pytest.mark.parametrize("scale", [0.25, 2.0 ** -7])
def test_qonnx_quant_rewrite(bits, signed, narrow, zeropt, scale):
    """Quant -> QuantizeLinear/Clip/DequantizeLinear is exact, ties and saturation included."""
    rng = np.random.default_rng(0)
    k = np.arange(-600, 601, dtype=np.float32) / 2  # every half step: exercises round-half-even
    x = np.concatenate([k * scale, rng.normal(0, 100 * scale, 500).astype(np.float32)]).astype(np.float32)
    attrs = {"signed": int(signed), "narrow": int(narrow), "rounding_mode": "ROUND"}
    m = _single_node("Quant", attrs, {"scale": scale, "zeropt": zeropt, "bitwidth": bits})
    got = run_ort(qonnx_to_qdq(m), x)[0]
    assert np.array_equal(got, int_quant(x, scale, zeropt, bits, signed, narrow))
    assert np.array_equal(got, qonnx_numpy_reference(m, x)[0])


def test_qonnx_rewrite_refuses_odd_zero_point():
    m = _single_node("Quant", {"signed": 1, "narrow": 0, "rounding_mode": "ROUND"},
                     {"scale": 0.25, "zeropt": 3.0, "bitwidth": 8})
    with pytest.raises(ValueError, match="even"):
        qonnx_to_qdq(m)


def test_qonnx_bipolar_rewrite():
    x = np.array([-2, -0.0, 0.0, 1e-30, -1e-30, 3], np.float32)
    m = _single_node("BipolarQuant", {}, {"scale": 0.5})
    assert np.array_equal(run_ort(qonnx_to_qdq(m), x)[0], bipolar_quant(x, 0.5))


@pytest.mark.parametrize("name", list(BAD))
def test_bad_inputs(name):
    assert BAD.keys() == BAD_ERRORS.keys()
    assert all(p == p.lower() for p in BAD_ERRORS[name])
    data = BAD[name]()
    assert isinstance(data, bytes) and data
    if name in ("truncated_file", "not_onnx"):
        with pytest.raises(Exception):
            onnx.load_from_string(data)
    else:
        onnx.checker.check_model(onnx.load_from_string(data), full_check=True)
    assert BAD[name]() == data


@pytest.mark.slow
@pytest.mark.tvm
def test_tvm_reason_claims():
    """tvm_reason is None exactly for the entries apache-tvm's Relax ONNX frontend imports."""
    pytest.importorskip("tvm")
    from tvm.relax.frontend.onnx import from_onnx

    wrong = []
    for name in NAMES:
        z = build(name)
        try:
            from_onnx(z.model, keep_params_in_input=False)
            imported = True
        except Exception:
            imported = False
        if imported != (z.tvm_reason is None):
            wrong.append(name)
    assert not wrong


@pytest.mark.slow
def test_build_from_scratch(tmp_path):
    """Building the whole zoo in a fresh process with an empty cache (float nets retrained) is fast
    and gives the same bytes as this process."""
    script = ("import hashlib, json; from tests.models import ZOO, build; "
              "print(json.dumps({n: hashlib.sha256(build(n).model.SerializeToString()).hexdigest() for n in ZOO}))")
    env = dict(os.environ, MCUC_TEST_CACHE=str(tmp_path))
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True,
                         check=True)
    elapsed = time.perf_counter() - t
    print(f"whole zoo from scratch: {elapsed:.1f} s")
    hashes = json.loads(out.stdout.strip().splitlines()[-1])
    mine = {n: hashlib.sha256(build(n).model.SerializeToString()).hexdigest() for n in ZOO}
    assert hashes == mine
    assert elapsed < 120
