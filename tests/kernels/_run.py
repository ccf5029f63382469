"""Build a graph as stm32f4-discovery firmware, run it in a simulator, compare with the interpreter."""

from __future__ import annotations

import numpy as np

from compiler.boards import load_board
from compiler.codegen import generate_project
from compiler.io import from_device, to_device
from compiler.ir import interpreter
from compiler.sim import firmware, runner


def random_feeds(g, rng):
    """One sample of uniformly random codes for every graph input."""
    return {v.name: rng.integers(v.type.dtype.qmin, v.type.dtype.qmax + 1, v.type.shape).astype(v.type.dtype.np)
            for v in g.inputs}


def run_and_compare(g, tmp_path, *, seed=0, sim="unicorn", board="stm32f4-discovery"):
    """(manifest, run, mismatching output names) of ``g`` on ``board`` against the interpreter."""
    proj = tmp_path / "proj"
    man = generate_project(g, load_board(board), proj, model_name=g.name, model_sha256="0" * 64)
    feeds = random_feeds(g, np.random.default_rng(seed))
    fw = firmware.build_firmware(proj)
    run = runner.run_firmware(proj, to_device(g, feeds), sim=sim, fw=fw)
    want = interpreter.run(g, feeds)
    got = from_device(g, run.outputs)
    bad = [v.name for v in g.outputs if not np.array_equal(got[v.name], want[v.name])]
    return man, run, bad
