"""int16 activations for the layers whose 8-bit output costs the most accuracy (TFLite's 16x8 idea).

A chosen activation point is stored as int16 with a power-of-two scale and zero point 0; the
weights keep their storage (int8 / int4 / ...). mcuc's IR, interpreter and generic kernels take
int16 tensors between int8 layers as they are (a conv reading int16 and writing int8, an add or
pool on int16), so nothing changes downstream but the QDQ types.

``--int16-activations LIST`` names the points (a tensor, or the node producing it, or the layer
whose output it is after its Relu / Clip). ``auto`` chooses them:

1. Sensitivity: for every point but the graph input, the model with only that point at 16 bits
   is built (bias correction and GPTQ as usual, the weights plan unchanged); the calibration
   error it removes is the error that point's 8-bit activation causes.
2. Cost: the arena mcuc's memory planner gives that model for ``--board`` (an int16 tensor takes
   twice the bytes, but only where it is live at the arena's peak does the arena grow). A point
   whose model mcuc cannot compile (e.g. the int32 accumulator bound of a long int16 dot
   product) stays 8-bit, with a note.
3. Greedy, most sensitive first: a point is added when the model with it and every point chosen
   so far has a lower calibration error and its measured arena is within the budget. The arena is
   not additive (the planner overlaps lifetimes), so every step is measured, not estimated.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import onnx

from ..errors import McucError
from .graph import ACTIVATION, Net
from .mixed import parse_amount
from .ptq import Result, Session


def arena_bytes(model: onnx.ModelProto, board: str) -> int:
    """``memory.arena_bytes`` of the project mcuc generates for ``model`` on ``board``."""
    from ..boards import load_board
    from ..codegen import render_project
    from ..pipeline import compile_model

    with tempfile.TemporaryDirectory(prefix="mcuc-quantize-") as d:
        p = Path(d) / "quantized.onnx"
        p.write_bytes(model.SerializeToString())
        try:
            g = compile_model(p, convention="onnx")
            return int(render_project(g, load_board(board), model_name="quantized", model_sha256="0" * 64)
                       .manifest["memory"]["arena_bytes"])
        except McucError as e:
            # The temporary file's name means nothing to the user; the node named after it does.
            raise McucError(str(e).replace(f"{p}: ", "")) from None


def parse_arena_budget(budget, all8: int) -> int:
    return parse_amount(budget, all8, option="--arena-budget", unit="bytes", example="6000")


def point_names(net: Net) -> dict[str, str]:
    """Every name a user may give for an activation point (the graph input excepted) -> the point."""
    producer = {o: n for n in net.model.graph.node for o in n.output}
    names: dict[str, str] = {}
    for p in net.points:
        if p == net.input_name:
            continue
        names[p] = p
        n = producer.get(p)
        while n is not None:
            names.setdefault(n.name, p)
            if n.op_type not in ACTIVATION:
                break
            n = producer.get(n.input[0])
    for l in net.layers:
        # A MatMul layer's point is its bias Add's output (or the activation after it).
        target = names.get(l.out) or next((names[n.output[0]] for n in net.model.graph.node
                                           if n.op_type in ACTIVATION and n.input and n.input[0] == l.out
                                           and n.output[0] in names), None)
        if target is not None:
            names.setdefault(l.name, target)
    return names


def resolve(net: Net, spec: str) -> list[str]:
    names = point_names(net)
    points = []
    for item in (t.strip() for t in spec.split(",")):
        if not item:
            continue
        if item == net.input_name:
            raise McucError(f"--int16-activations: {item!r} is the graph input, which stays 8-bit")
        if item not in names:
            known = sorted({k for k, v in names.items() if k != v}) or sorted(names)
            raise McucError(f"--int16-activations: no layer or activation named {item!r} "
                            f"(layers: {', '.join(known[:12])}{', ...' if len(known) > 12 else ''})")
        points.append(names[item])
    if not points:
        raise McucError("--int16-activations: no names given")
    return list(dict.fromkeys(points))


def _measure(sess: Session, plan, wide) -> tuple[onnx.ModelProto, float, int]:
    sess.wide = frozenset(wide)
    model, err = sess.build(plan)
    return model, err, arena_bytes(model, sess.opts.board)


def _flash_ok(result: Result, model) -> bool:
    """Whether ``model`` keeps a mixed-precision flash budget (the weights are rounded again
    against int16 inputs, and a coarsened exponent can add a shift array)."""
    from .mixed import weights_flash

    budget = result.flash.get("budget_bytes") if result.flash else None
    return budget is None or weights_flash(model) <= budget


def int16_activations(sess: Session, result: Result, spec: str, budget, board: str) -> None:
    """Set the points of ``spec`` (names, or ``auto`` under ``budget``) to int16 in ``result``."""
    plan = result.plan
    base_model, base_err = result.model, result.error
    all8 = arena_bytes(base_model, board)
    spec = spec.strip()
    if spec != "auto":
        wide = resolve(sess.net, spec)
        try:
            model, err, arena = _measure(sess, plan, wide)
        except McucError as e:
            raise McucError(f"--int16-activations {spec}: {e}") from None
        chosen, target = sess.wide, None
    else:
        target = parse_arena_budget(budget, all8)
        if all8 > target:
            raise McucError(f"--arena-budget {target} B cannot be met: the all-int8 model's arena on {board} is {all8} B")
        sens: dict[str, float] = {}
        for p in [p for p in sess.net.points if p != sess.net.input_name]:
            try:
                _, err, _ = _measure(sess, plan, {p})
            except McucError as e:
                result.notes.append(f"{p} stays 8-bit: mcuc cannot compile it as int16 ({e})")
                continue
            sens[p] = base_err - err
        result.act_sensitivity = sens
        chosen, model, err, arena = frozenset(), base_model, base_err, all8
        for p in sorted(sens, key=lambda q: -sens[q]):
            if sens[p] <= 0:
                break
            try:
                m, e, a = _measure(sess, plan, chosen | {p})
            except McucError as exc:
                result.notes.append(f"{p} stays 8-bit: mcuc cannot compile it as int16 with the others ({exc})")
                continue
            if e < err and a <= target and _flash_ok(result, m):
                chosen, model, err, arena = chosen | {p}, m, e, a
        if not chosen:
            result.notes.append("no activation went to int16: none lowers the calibration error within the arena budget")
    sess.wide = frozenset(chosen)
    if result.flash:
        from .mixed import weights_flash

        result.flash["weights_bytes"] = weights_flash(model)
        if target is None and not _flash_ok(result, model):
            raise McucError(f"--int16-activations {spec}: the weights, rounded again for the int16 inputs, take "
                            f"{result.flash['weights_bytes']} B, over --flash-budget {result.flash['budget_bytes']} B")
    if result.cycles and chosen:
        from .cycles import estimate

        result.cycles["estimated"] = estimate(model, sess.x, [l.name for l in sess.net.layers], board).total
        if result.cycles["budget"] is not None and result.cycles["estimated"] > result.cycles["budget"]:
            result.notes.append(f"the int16 activations take the estimate to {result.cycles['estimated']} cycles, over "
                                "--cycle-budget (the solver chose the weights for 8-bit activations)")
    result.model, result.error, result.acts = model, err, sess.acts
    result.int16 = [p for p in sess.net.points if p in chosen]
    result.arena = {"board": board, "all_int8_bytes": all8, "budget_bytes": target, "arena_bytes": arena}
