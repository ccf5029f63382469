"""Memory planner properties on randomized programs, plus its behaviour on known shapes.

The strongest check executes each plan: every value gets distinct random bytes, each step
scribbles over its scratch, checks that all its inputs still hold their bytes where the plan
put them, then writes its output. Any overlap of live storage shows up as corrupted input.
"""

from __future__ import annotations

import numpy as np
import pytest

from compiler.codegen import memory
from compiler.codegen.memory import PStep, PValue

from ._graphs import chain_graph, layer_zoo


def random_program(rng: np.random.Generator):
    values: dict[int, PValue] = {}
    steps: list[PStep] = []
    nin = int(rng.integers(1, 4))
    for k in range(nin):
        values[k] = PValue(k, int(rng.integers(1, 300)), 1, "input", k)
    nconst = int(rng.integers(0, 3))
    for k in range(nconst):
        values[nin + k] = PValue(nin + k, int(rng.integers(1, 50)), 1, "const", k)
    avail = list(values)
    for _ in range(int(rng.integers(1, 25))):
        key = len(values)
        kind = rng.random()
        x = int(rng.choice(avail))
        if kind < 0.2:  # reshape: same bytes, may share storage
            values[key] = PValue(key, values[x].nbytes, values[x].elem_bytes)
            steps.append(PStep([x], [key], 0, alias=True))
        elif kind < 0.6:  # elementwise, possibly in place, sometimes with a second operand
            ins = [x] + ([int(rng.choice(avail))] if rng.random() < 0.5 else [])
            elem = 1 if rng.random() < 0.8 else 4
            values[key] = PValue(key, values[x].nbytes if elem == values[x].elem_bytes else values[x].nbytes * 2, elem)
            steps.append(PStep(ins, [key], 0, inplace=tuple(range(len(ins)))))
        else:  # anything else, with scratch now and then
            ins = [int(v) for v in rng.choice(avail, size=int(rng.integers(1, 3)))]
            values[key] = PValue(key, int(rng.integers(1, 400)), 1)
            steps.append(PStep(ins, [key], int(rng.integers(1, 200)) if rng.random() < 0.3 else 0))
        avail.append(key)
    produced = [s.outputs[0] for s in steps]
    outs = sorted({int(v) for v in rng.choice(produced, size=int(rng.integers(1, 4)))})
    if rng.random() < 0.2:
        outs.append(0)  # an input that is also an output
    if rng.random() < 0.2:
        outs.append(outs[0])  # the same value twice
    return values, steps, outs


def execute(values, steps, outs, plan: memory.MemoryPlan, rng) -> None:
    arena = np.zeros(max(plan.arena_bytes, 1), np.uint8)
    ins = {k: rng.integers(0, 256, v.nbytes).astype(np.uint8) for k, v in values.items() if v.kind == "input"}
    outb = {j: np.zeros(values[k].nbytes, np.uint8) for j, k in enumerate(outs)}
    consts = {k: rng.integers(0, 256, v.nbytes).astype(np.uint8) for k, v in values.items() if v.kind == "const"}
    content = {**ins, **consts}

    def region(k):
        loc = plan.locations[k]
        n = values[k].nbytes
        if loc.kind == "arena":
            assert loc.offset % memory.ALIGN == 0
            assert loc.offset + n <= plan.arena_bytes
            return arena[loc.offset:loc.offset + n]
        if loc.kind == "output":
            return outb[loc.index][:n]
        if loc.kind == "input":
            return ins[next(i for i in ins if values[i].index == loc.index)]
        return consts[next(c for c in consts if values[c].index == loc.index)]

    for i, s in enumerate(steps):
        if i in plan.scratch:
            off = plan.scratch[i]
            arena[off:off + s.scratch] = rng.integers(0, 256, s.scratch)
        for k in s.inputs:
            assert np.array_equal(region(k), content[k]), f"step {i}: input {k} was overwritten"
        y = s.outputs[0]
        if i in plan.aliased:
            content[y] = content[s.inputs[0]]
            assert np.shares_memory(region(y), region(s.inputs[0])) or np.array_equal(region(y), content[y])
            continue
        assert plan.locations[y].kind in ("arena", "output"), "a step writes into an input or a constant"
        content[y] = rng.integers(0, 256, values[y].nbytes).astype(np.uint8)
        region(y)[:] = content[y]
    for j, k in plan.copies:
        outb[j][:] = region(k)
    for j, k in enumerate(outs):
        assert np.array_equal(outb[j], content[k]), f"output {j} is wrong"


@pytest.mark.parametrize("seed", range(300))
def test_random_programs(seed):
    rng = np.random.default_rng(seed)
    values, steps, outs = random_program(rng)
    plan = memory.plan(values, steps, outs)
    memory.check(plan.buffers)
    assert plan.arena_bytes >= plan.lower_bound
    assert plan.sum_of_tensors >= plan.arena_bytes
    execute(values, steps, outs, plan, rng)


def test_chain_is_in_place_and_optimal():
    """x -> a -> b -> c elementwise chain: one buffer, reused in place."""
    values = {0: PValue(0, 100, 1, "input"), 1: PValue(1, 100), 2: PValue(2, 100), 3: PValue(3, 100), 4: PValue(4, 100)}
    steps = [PStep([0], [1]), PStep([1], [2], inplace=(0,)), PStep([2], [3], alias=True), PStep([3], [4])]
    plan = memory.plan(values, steps, [4])
    assert plan.inplace == {1} and plan.aliased == {2}
    assert plan.arena_bytes == plan.lower_bound == 100
    assert plan.locations[4].kind == "output" and not plan.copies


def test_no_in_place_when_input_lives_on():
    values = {0: PValue(0, 64, 1, "input"), 1: PValue(1, 64), 2: PValue(2, 64), 3: PValue(3, 64)}
    steps = [PStep([0], [1]), PStep([1], [2], inplace=(0,)), PStep([1, 2], [3])]
    plan = memory.plan(values, steps, [3])
    assert plan.inplace == set()
    assert plan.locations[1].offset != plan.locations[2].offset


def test_output_written_directly_through_reshape():
    """The producer of a reshaped graph output writes into the caller's buffer."""
    values = {0: PValue(0, 10, 1, "input"), 1: PValue(1, 10), 2: PValue(2, 10)}
    plan = memory.plan(values, [PStep([0], [1]), PStep([1], [2], alias=True)], [2])
    assert plan.arena_bytes == 0 and plan.locations[1].kind == "output" and not plan.copies


def test_scratch_counts_in_lower_bound():
    values = {0: PValue(0, 40, 1, "input"), 1: PValue(1, 40), 2: PValue(2, 40)}
    plan = memory.plan(values, [PStep([0], [1], scratch=30), PStep([1], [2], scratch=10)], [2])
    assert plan.lower_bound == 40 + 32 and plan.arena_bytes == plan.lower_bound


@pytest.mark.parametrize("make", [layer_zoo, chain_graph])
def test_real_graphs(make, tmp_path):
    from compiler.codegen.project import render_project
    from compiler.boards import load_board

    r = render_project(make(), load_board("host"), model_name="m", model_sha256="0")
    mem = r.manifest["memory"]
    assert mem["lower_bound"] <= mem["arena_bytes"] <= mem["sum_of_tensors"]
