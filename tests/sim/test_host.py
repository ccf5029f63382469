"""compiler.sim.host: build with the project's Makefile, run N samples in one process, and turn
build failures, crashes and bad inputs into McucError."""

from __future__ import annotations

import shutil
import struct
import subprocess

import numpy as np
import pytest

from compiler.codegen import generate_project
from compiler.errors import McucError
from compiler.ir.dtypes import DType
from compiler.ir.quant import QParams
from compiler.sim import build_host, run_host, run_host_detailed

from tests.codegen._graphs import Builder, reference

pytestmark = pytest.mark.skipif(shutil.which("make") is None or shutil.which("cc") is None,
                                reason="make and a host C compiler are needed")


@pytest.fixture()
def project(tmp_path):
    b = Builder(3, "pair")
    q, qu = QParams(0.1, 2), QParams(0.2, 128)
    x = b.inp((1, 2, 3), DType.INT8, q)
    y = b.inp((1, 4), DType.UINT8, qu)
    b.out(b.node("clamp", [x], b.ttype((1, 2, 3), DType.INT8, q), dict(lo=-50, hi=60), name="cx"))
    b.out(b.node("lut", [y], b.ttype((1, 4), DType.INT8, q), dict(table=np.arange(256) // 2 - 64), name="ly"))
    generate_project(b.g, "host", tmp_path, model_name="pair", model_sha256="0" * 64)
    return b.g, tmp_path


def _feeds(n):
    rng = np.random.default_rng(0)
    return {"in0": rng.integers(-128, 128, (n, 2, 3)).astype(np.int8),
            "in1": rng.integers(0, 256, (n, 4)).astype(np.uint8)}


def test_many_samples_one_process(project):
    g, d = project
    feeds = _feeds(7)
    run = run_host_detailed(d, feeds)
    assert run.result["status"] == "PASS" and run.result["samples"] == "7"
    ref = reference(g, feeds)
    assert set(run.outputs) == {"cx", "ly"}
    for k in ref:
        assert run.outputs[k].shape == ref[k].shape and np.array_equal(run.outputs[k], ref[k])


def test_inputs_by_c_name_and_zero_samples(project):
    _, d = project
    feeds = _feeds(2)
    out = run_host(d, {"in0": feeds["in0"], "in1": feeds["in1"]})
    assert out["cx"].shape == (2, 2, 3)
    empty = run_host(d, {"in0": feeds["in0"][:0], "in1": feeds["in1"][:0]})
    assert empty["cx"].shape == (0, 2, 3)


@pytest.mark.parametrize("feeds, msg", [
    ({"in0": np.zeros((2, 2, 3), np.int8)}, "no data for input 'in1'"),
    ({"in0": np.zeros((2, 3, 2), np.int8), "in1": np.zeros((2, 4), np.uint8)}, "does not stack"),
    ({"in0": np.zeros((2, 2, 3), np.int8), "in1": np.full((2, 4), 300)}, "outside uint8"),
    ({"in0": np.zeros((2, 2, 3), np.float32), "in1": np.zeros((2, 4), np.uint8)}, "integer data"),
    ({"in0": np.zeros((2, 2, 3), np.int8), "in1": np.zeros((3, 4), np.uint8)}, "different numbers"),
])
def test_bad_inputs(project, feeds, msg):
    _, d = project
    with pytest.raises(McucError, match=msg):
        run_host(d, feeds)


def test_build_failure_reports_first_error(project):
    _, d = project
    src = d / "pair.c"
    src.write_text(src.read_text().replace("return 0;\n}", "return undeclared_thing;\n}"))
    with pytest.raises(McucError, match=r"build failed: .*error.*undeclared_thing"):
        run_host(d, _feeds(1))


def test_crash_reports_signal(project):
    _, d = project
    src = d / "pair.c"
    text = src.read_text().replace("#include <string.h>", "#include <string.h>\n#include <stdlib.h>")
    src.write_text(text.replace("    return 0;\n}", "    abort();\n}"))
    with pytest.raises(McucError, match="SIGABRT"):
        run_host(d, _feeds(1))


def test_harness_protocol_over_stdio(project):
    """The harness reads the sample count and samples from stdin, writes outputs to stdout and
    its text lines to stderr."""
    _, d = project
    exe = build_host(d)
    feeds = _feeds(2)
    payload = struct.pack("<I", 2) + b"".join(feeds["in0"][i].tobytes() + feeds["in1"][i].tobytes() for i in range(2))
    r = subprocess.run([str(exe)], input=payload, capture_output=True, timeout=60)
    assert r.returncode == 0
    assert len(r.stdout) == 2 * (6 + 4)
    assert b"MCUC_RESULT status=PASS samples=2" in r.stderr
    short = subprocess.run([str(exe)], input=payload[:-3], capture_output=True, timeout=60)
    assert short.returncode == 1 and b"status=FAIL" in short.stderr and b"reason=short_input" in short.stderr
