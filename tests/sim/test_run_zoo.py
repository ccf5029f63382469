"""`mcuc run --board host` is bit-exact with `mcuc interpret` on every test model.

Each zoo model is compiled to a C project and run natively on its inputs (the whole digits test
split for small nets) with gcc and clang under -Wall -Wextra -Werror; a few run under ASan/UBSan.
"""

from __future__ import annotations

import numpy as np
import pytest

import tests.models as zoo
from compiler.boards import load_board
from compiler.codegen import generate_project
from compiler.io import from_device, to_device
from compiler.ir import interpreter
from compiler.sim import run_host

from ..codegen._tools import SANITIZE, STRICT, have, sanitizers_work
from ..frontend.zoo_check import compile_zoo, feeds_for

QUANTIZED = [n for n in zoo.ZOO if not n.startswith("float_") and n != "qonnx_cnn_bipolar"]
SANITIZED = ["ort_qdq_resnet_s8", "brevitas_cnn_w4a4_pc", "ort_qdq_bn_s8", "qonnx_resnet_w4a8"]


def _host_vs_interpreter(name, tmp_path, cc, extra):
    z = zoo.build(name)
    g = compile_zoo(z, tmp_path)
    feeds = feeds_for(g, z)
    proj = tmp_path / "proj"
    generate_project(g, load_board("host"), proj, model_name=name, model_sha256="0" * 64)
    outs = from_device(g, run_host(proj, to_device(g, feeds), cc=cc, cflags=" ".join(STRICT + ["-O2"] + extra)))
    want = interpreter.run(g, feeds)
    for v in g.outputs:
        assert outs[v.name].dtype == want[v.name].dtype
        assert np.array_equal(outs[v.name], want[v.name]), v.name


@pytest.mark.parametrize("name", QUANTIZED)
@pytest.mark.parametrize("cc", ["gcc", "clang"])
def test_host_bit_exact(name, cc, tmp_path):
    if not have(cc):
        pytest.skip(f"{cc} is not installed")
    _host_vs_interpreter(name, tmp_path, cc, [])


@pytest.mark.parametrize("name", SANITIZED)
def test_host_sanitizers_clean(name, tmp_path):
    if not sanitizers_work("clang"):
        pytest.skip("clang with ASan/UBSan runtime is not available")
    _host_vs_interpreter(name, tmp_path, "clang", SANITIZE + ["-g"])
