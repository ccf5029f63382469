"""The four MLPerf Tiny reference models as stm32f4-discovery firmware: bit-exact with TFLite
Micro's outputs in QEMU (all reference samples, one boot) and in Unicorn (one sample), with the
same instruction and cycle counts from both engines on that sample."""

from __future__ import annotations

import numpy as np
import pytest

from compiler.codegen import generate_project
from compiler.sim import firmware, runner
from tests.conftest import MLPERF_MODELS, mlperf_path

from ._fw import need_arm_toolchain, need_qemu

pytestmark = [pytest.mark.arm_gcc, pytest.mark.qemu]


@pytest.mark.parametrize("name", MLPERF_MODELS)
def test_mlperf_on_stm32f4_discovery(name, tmp_path):
    path = mlperf_path(name)
    need_arm_toolchain()
    need_qemu()
    from compiler.pipeline import compile_model

    g = compile_model(path)
    io = np.load(path.parent / f"{name}_io.npz")
    x, want = io["x_int8"], io["y_tflm"]
    man = generate_project(g, "stm32f4-discovery", tmp_path, model_name=name, model_sha256="0" * 64)
    t_in, t_out = man["inputs"][0], man["outputs"][0]
    feeds = {t_in["graph_name"]: x.reshape((-1,) + tuple(t_in["shape"][1:]))}
    fw = firmware.build_firmware(tmp_path)
    q = runner.run_firmware(tmp_path, feeds, sim="qemu", fw=fw)
    assert q.sessions == 1 and q.samples == x.shape[0]
    assert np.array_equal(q.outputs[t_out["graph_name"]].reshape(want.shape), want)
    one = {k: v[:1] for k, v in feeds.items()}
    u = runner.run_firmware(tmp_path, one, sim="unicorn", fw=fw)
    assert np.array_equal(u.outputs[t_out["graph_name"]].reshape(want[:1].shape), want[:1])
    q1 = runner.run_firmware(tmp_path, one, sim="qemu", fw=fw)
    assert (q1.instructions, q1.cycles, q1.instructions_total) == (u.instructions, u.cycles, u.instructions_total)
    assert [(a["instructions"], a["cycles"]) for a in q1.layers] == [(a["instructions"], a["cycles"]) for a in u.layers]
