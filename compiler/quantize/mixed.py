"""Mixed precision: per-layer weight storage chosen under a flash budget.

Each layer can store its weights as int8 or int4 (packed two per byte by mcuc), with one
power-of-two exponent per output channel or one for the whole layer. Per tensor costs accuracy
but saves the layer's per-channel shift array (one int32 per channel in mcuc's generated code,
which on small depthwise / pointwise layers is as large as the int4 weights themselves).

1. Sensitivity: for every layer and storage choice, the quantized model with only that layer
   changed (bias-corrected as usual) is run on the calibration data; the increase of the output
   error over the all-int8 per-channel model is the layer's cost for that choice.
2. Bytes: the weights flash of the all-int8 model is measured with mcuc's own code generator;
   each choice's saving is computed from the layer's weight count and channel count.
3. Solver: minimise the summed sensitivity with the estimated flash within the budget, exactly
   (every combination) for up to 8 layers, otherwise greedily by sensitivity per byte saved.
   Sensitivities are not exactly additive, so the best few plans are built and the least real
   error wins; the first and last layers are kept at 8 bits ("Pareto-optimal quantized ResNet
   is mostly 4-bit", ends excepted) unless the budget needs them lower or a plan with them lower
   is measurably better.
4. The chosen model is compiled and measured; if the estimate was short, the solver reruns with
   the budget lowered by the difference.
"""

from __future__ import annotations

import itertools
import tempfile
from pathlib import Path

import onnx

from ..errors import McucError
from .ptq import Choice, Result, Session

CHOICES = (Choice(8, True), Choice(8, False), Choice(4, True), Choice(4, False))
EXACT_LAYERS = 8
CANDIDATES = 6
SHIFT_BYTES = 4  # one int32 shift per output channel when a layer's shifts differ


def weights_flash(model: onnx.ModelProto) -> int:
    """``flash.weights_bytes`` of the project mcuc generates for ``model`` (host board)."""
    from ..boards import load_board
    from ..codegen import render_project
    from ..pipeline import compile_model

    with tempfile.TemporaryDirectory(prefix="mcuc-quantize-") as d:
        p = Path(d) / "quantized.onnx"
        p.write_bytes(model.SerializeToString())
        g = compile_model(p, convention="onnx")
    return int(render_project(g, load_board("host"), model_name="quantized", model_sha256="0" * 64)
               .manifest["flash"]["weights_bytes"])


def parse_amount(budget, all8: int, *, option: str, unit: str, example: str) -> int:
    """A budget given as an amount (``unit``, e.g. "12000" or "5e4") or as a percentage of the
    all-int8 model's figure ``all8`` (e.g. "60%"); a one-line error naming ``option`` otherwise."""
    if not isinstance(budget, str):
        return int(budget)
    text = budget.strip()
    try:
        if text.endswith("%"):
            return int(all8 * float(text[:-1]) / 100.0)
        return int(float(text))
    except ValueError:
        raise McucError(f"{option} {budget!r}: expected {unit} (e.g. {example}) or a percentage of the all-int8 "
                        "model's (e.g. 60%)") from None


def parse_budget(budget, all8: int) -> int:
    return parse_amount(budget, all8, option="--flash-budget", unit="bytes", example="12000")


def _layer_bytes(sess: Session, layer, c: Choice) -> int:
    w = sess.inits[layer.weight]
    n = int(w.size)
    _, exps = sess.weights(layer, c)
    weights = n if c.bits == 8 else (n + 1) // 2
    return weights + (SHIFT_BYTES * len(exps) if len(set(exps.tolist())) > 1 else 0)


def _solve(names, costs, sens, budget, allowed, cyc=None, cyc_budget=float("inf")) -> list[tuple]:
    """Choice indices per layer with total cost <= budget (and, with ``cyc``, estimated cycles <=
    cyc_budget), best estimated sensitivity first: the CANDIDATES best of every combination for
    few layers, else the one greedy plan."""
    opts = [[k for k in range(len(CHOICES)) if allowed(i, k)] for i in range(len(names))]
    cyc = cyc or [[0] * len(CHOICES) for _ in names]
    if len(names) <= EXACT_LAYERS:
        found = []
        for combo in itertools.product(*opts):
            cost = sum(costs[i][k] for i, k in enumerate(combo))
            if cost <= budget and sum(cyc[i][k] for i, k in enumerate(combo)) <= cyc_budget:
                found.append((sum(sens[i][k] for i, k in enumerate(combo)), cost, combo))
        found.sort()
        return [c for _, _, c in found[:CANDIDATES]]
    combo = [0] * len(names)
    total = sum(costs[i][0] for i in range(len(names)))
    cycles = sum(cyc[i][0] for i in range(len(names)))
    while total > budget or cycles > cyc_budget:
        # Moves that lower what is over its budget without pushing the other over its own.
        moves = []
        for i in range(len(names)):
            for k in opts[i]:
                df, dc = costs[i][k] - costs[i][combo[i]], cyc[i][k] - cyc[i][combo[i]]
                gain = (-df / max(budget, 1) if total > budget else 0.0) + (-dc / max(cyc_budget, 1) if cycles > cyc_budget else 0.0)
                if gain <= 0 or (total <= budget < total + df) or (cycles <= cyc_budget < cycles + dc):
                    continue
                moves.append((max(sens[i][k] - sens[i][combo[i]], 0.0) / gain, i, k))
        if not moves:
            return []
        _, i, k = min(moves)
        total += costs[i][k] - costs[i][combo[i]]
        cycles += cyc[i][k] - cyc[i][combo[i]]
        combo[i] = k
    return [tuple(combo)]


def parse_cycles(budget, all8: int) -> int:
    return parse_amount(budget, all8, option="--cycle-budget", unit="cycles", example="250000")


def _cycle_costs(sess: Session, names: list[str], board: str):
    """Per layer and choice, the estimated cycles of the layer's kernel (from the board's cycle
    model, one firmware run per uniform plan); the cycles of everything else; the all-int8 total."""
    from .cycles import check_board, estimate

    check_board(board)
    ests = [estimate(sess.build({n: c for n in names})[0], sess.x, names, board) for c in CHOICES]
    cyc = [[ests[k].layers[n] for k in range(len(CHOICES))] for n in names]
    return cyc, ests[0].total - sum(r[0] for r in cyc), ests[0].total, ests[0].model


def mixed_precision(sess: Session, result: Result, budget, cycle_budget=None, board: str = "stm32f4-discovery") -> None:
    """Choose each layer's storage within ``budget`` (weights flash) and/or ``cycle_budget``
    (cycles per inference on ``board``, estimated by its cycle model)."""
    from .cycles import estimate

    net = sess.net
    base_plan = {l.name: CHOICES[0] for l in net.layers}
    base_model, base_err = sess.build(base_plan)
    all8 = weights_flash(base_model)
    target = parse_budget(budget, all8) if budget is not None else None
    names = [l.name for l in net.layers]
    cyc = cyc_target = None
    cyc_other = 0
    if cycle_budget is not None:
        cyc, cyc_other, cyc_all8, cyc_model = _cycle_costs(sess, names, board)
        cyc_target = parse_cycles(cycle_budget, cyc_all8)
    sens = []
    for l in net.layers:
        row = [0.0]
        for c in CHOICES[1:]:
            _, err = sess.build({**base_plan, l.name: c})
            row.append(max(err - base_err, 0.0))
        sens.append(row)
    costs = [[_layer_bytes(sess, l, c) for c in CHOICES] for l in net.layers]
    other = all8 - sum(row[0] for row in costs)  # biases, tables, ... the same for every choice
    ends = {0, len(names) - 1}
    limit = target if target is not None else float("inf")
    cyc_limit = cyc_target if cyc_target is not None else float("inf")
    actual_cyc = None
    for _ in range(3):
        pinned_combos = _solve(names, costs, sens, limit - other, lambda i, k: CHOICES[k].bits == 8 or i not in ends,
                               cyc, cyc_limit - cyc_other)
        free_combos = _solve(names, costs, sens, limit - other, lambda i, k: True, cyc, cyc_limit - cyc_other)
        if not free_combos:
            if cyc is not None:
                fastest = cyc_other + sum(min(r) for r in cyc)
                raise McucError(f"--cycle-budget {cyc_target}" + (f" with --flash-budget {target} B" if target is not None else "")
                                + f" cannot be met: the all-int8 model is estimated at {cyc_all8} cycles and the fastest "
                                f"storage choice per layer at about {fastest} ({cyc_model})")
            floor = other + sum(min(r) for r in costs)
            raise McucError(f"--flash-budget {target} B cannot be met: all-int8 weights take {all8} B and the smallest "
                            f"storage mcuc quantize can choose takes about {floor} B")
        # Layer sensitivities do not add up exactly: build the best few plans, with the first and
        # last layers at 8 bits and without that preference, and keep the least real error on
        # the calibration data (ties go to the plan keeping the ends at 8 bits).
        built = []
        for combo in dict.fromkeys(pinned_combos[:CANDIDATES] + free_combos[:CANDIDATES]):
            plan = {n: CHOICES[k] for n, k in zip(names, combo)}
            model, err = sess.build(plan)
            ends_low = any(CHOICES[combo[i]].bits < 8 for i in ends)
            built.append((err, ends_low, combo, model, plan))
        err, ends_low, _, model, plan = min(built, key=lambda b: b[:3])
        actual = weights_flash(model)
        if cyc is not None:
            actual_cyc = estimate(model, sess.x, names, board).total
        flash_ok = target is None or actual <= target
        cyc_ok = cyc_target is None or actual_cyc <= cyc_target
        if flash_ok and cyc_ok:
            break
        if not flash_ok:
            limit -= actual - target
        if not cyc_ok:
            cyc_limit -= actual_cyc - cyc_target
    else:
        raise McucError("the budgets cannot be met: the closest plan found takes " + f"{actual} B of weights flash"
                        + (f" and an estimated {actual_cyc} cycles" if actual_cyc is not None else ""))
    if ends_low:
        result.notes.append("the first or last layer is below 8 bits: "
                            + ("the budget needs it" if not pinned_combos else "that plan has the least error"))
    result.model, result.plan, result.error = model, plan, err
    result.sensitivity = {n: dict(zip((c.text() for c in CHOICES), row)) for n, row in zip(names, sens)}
    result.flash = {"all_int8_bytes": all8, "budget_bytes": target, "weights_bytes": actual}
    if cyc is not None:
        result.cycles = {"board": board, "model": cyc_model, "all_int8": cyc_all8, "budget": cyc_target,
                         "estimated": actual_cyc}
