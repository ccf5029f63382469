"""The pass registry, the fixed-point driver and the pipeline list."""

from __future__ import annotations

import importlib
import re

import numpy as np
import onnx
import pytest

from compiler import passes
from compiler.errors import McucError, VerifyError
from compiler.frontend import import_model
from compiler.ir import interpreter
from compiler.passes import PASSES, PassContext, register, run_fixpoint, run_pass
from compiler.pipeline import PIPELINE, compile_model

from ..ir.tiny_models import tiny_inputs, tiny_qdq_cnn


def test_names_are_kebab_case_and_one_per_file():
    for name, fn in PASSES.items():
        assert re.fullmatch(r"[a-z]+(-[a-z0-9]+)*", name), name
        mod = importlib.import_module(fn.__module__)
        assert mod.__file__.endswith(name.replace("-", "_") + ".py"), (name, mod.__file__)
        assert "Preconditions" in (mod.__doc__ or "") or "preconditions" in (mod.__doc__ or ""), name


def test_pipeline_uses_registered_passes_only():
    used = {p for step in PIPELINE for p in step.passes}
    assert used <= set(PASSES)
    assert set(PASSES) - used == set(), f"registered but never run: {set(PASSES) - used}"


def test_verifier_runs_after_every_pass_and_names_it(tmp_path):
    g = import_model(tiny_qdq_cnn(), "tiny.onnx")

    @register("break-shapes-for-test")
    def breaker(graph, ctx):
        graph.nodes[-1].out.type = graph.nodes[-1].out.type.with_(shape=(9, 9))
        return True

    try:
        with pytest.raises(VerifyError, match="after break-shapes-for-test"):
            run_pass("break-shapes-for-test", g, PassContext())
    finally:
        del PASSES["break-shapes-for-test"]


def test_fixpoint_cap():
    g = import_model(tiny_qdq_cnn(), "tiny.onnx")

    @register("always-changes-for-test")
    def forever(graph, ctx):
        return True

    try:
        with pytest.raises(McucError, match="fixed point"):
            run_fixpoint(["always-changes-for-test"], g, PassContext(), cap=5)
    finally:
        del PASSES["always-changes-for-test"]


def test_dump_after_all_prints_every_stage(tmp_path):
    p = tmp_path / "tiny.onnx"
    onnx.save(tiny_qdq_cnn(), p)
    out: list[str] = []
    compile_model(p, dump_after=["all"], dump=out.append)
    stages = {line.split()[2] for text in out for line in text.splitlines()[:1]}
    assert {"import", "lower-conv", "fuse-epilogue", "layout-nhwc", "check-lowered"} <= stages


@pytest.mark.parametrize("pow2", [False, True])
def test_lowering_keeps_outputs_within_one_step(tmp_path, pow2):
    """The graph is executable at every stage: float semantics before lowering, integers after."""
    p = tmp_path / "tiny.onnx"
    onnx.save(tiny_qdq_cnn(pow2=pow2), p)
    before = import_model(onnx.load(p), str(p))
    after = compile_model(p)
    x = tiny_inputs(64)
    a = interpreter.run(before, {"x": x})["y"]
    b = interpreter.run(after, {"x": x})["y"]
    step = 2.0 ** np.round(np.log2(0.1)) if pow2 else 0.1
    assert np.max(np.abs(a - b)) <= step * 1.0001
    if pow2:
        assert np.array_equal(a, b)


def test_pow2_scale_policy_makes_every_requant_a_shift(tmp_path):
    p = tmp_path / "tiny.onnx"
    onnx.save(tiny_qdq_cnn(), p)
    g = compile_model(p, scale_policy="pow2")
    kinds = {n.attrs["requant"].kind for n in g.nodes if n.attrs.get("requant") is not None}
    assert "dyadic" not in kinds and "shift" in kinds
    _ = passes
