"""``--cycle-budget``: the mixed-precision solver under the board's cycle estimates (firmware run in
the board's simulator under mcuc's Cortex-M4 timing model)."""

from __future__ import annotations

import shutil

import pytest

import tests.models as zoo
from compiler.errors import McucError
from compiler.quantize.mixed import _solve, parse_cycles
from compiler.quantize.ptq import Options, quantize

from ._helpers import accuracy, calibration, float_accuracy

needs_arm = pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="arm-none-eabi-gcc is not installed")


def test_solver_respects_both_budgets():
    names = ["a", "b"]
    costs = [[100, 90, 50, 45], [200, 190, 100, 95]]
    cyc = [[10, 9, 14, 13], [20, 19, 30, 28]]
    sens = [[0, 0.1, 0.3, 0.4], [0, 0.05, 0.2, 0.25]]
    combos = _solve(names, costs, sens, 250, lambda i, k: True, cyc, 35)
    assert combos
    for c in combos:
        assert sum(costs[i][k] for i, k in enumerate(c)) <= 250
        assert sum(cyc[i][k] for i, k in enumerate(c)) <= 35
    assert _solve(names, costs, sens, 250, lambda i, k: True, cyc, 20) == []


def test_parse_cycles():
    assert parse_cycles("110%", 1000) == 1100 and parse_cycles("5e4", 1) == 50000
    with pytest.raises(McucError, match="--cycle-budget"):
        parse_cycles("fast", 1)


def test_board_without_cycle_model_is_an_error():
    with pytest.raises(McucError, match="needs a board with a simulator"):
        quantize(zoo.build("float_cnn").model, calibration("float_cnn"),
                 Options(weight_bits="mixed", cycle_budget="110%", board="host"))


@pytest.mark.slow
@pytest.mark.arm_gcc
@needs_arm
def test_flash_and_cycle_budgets_together():
    r = quantize(zoo.build("float_cnn").model, calibration("float_cnn"),
                 Options(weight_bits="mixed", flash_budget="60%", cycle_budget="112%"))
    c, f = r.cycles, r.flash
    assert c["estimated"] <= c["budget"] == int(c["all_int8"] * 1.12)
    assert f["weights_bytes"] <= f["budget_bytes"]
    assert c["model"].startswith("estimated, Cortex-M4 model")
    assert float_accuracy("float_cnn") - accuracy("float_cnn", r.model) <= 0.02


@pytest.mark.slow
@pytest.mark.arm_gcc
@needs_arm
def test_infeasible_cycle_budget_gives_the_floor():
    with pytest.raises(McucError, match=r"--cycle-budget \d+ cannot be met: the all-int8 model is estimated at \d+ cycles"):
        quantize(zoo.build("float_cnn").model, calibration("float_cnn"),
                 Options(weight_bits="mixed", cycle_budget="50%"))
