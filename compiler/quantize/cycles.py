"""Estimated cycles of a quantized model on a board, per quantizer layer, for ``--cycle-budget``.

The figures are the board's cycle model (e.g. compiler/sim/cortex_m4.yaml), applied by running
the firmware mcuc generates once in the board's simulator (compiler/sim/runner.py) -- estimates
from a named timing model, not measurements of hardware. Each quantizer layer (an ONNX Conv /
Gemm / MatMul) is matched to the generated kernel of the same node by name.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from ..errors import McucError


@dataclass
class Estimate:
    total: int                 # cycles per inference
    layers: dict[str, int]     # quantizer layer name -> cycles of its kernel
    model: str                 # which cycle model, for reports


def check_board(board: str) -> None:
    """Fail early (one line) when ``board`` cannot give cycle estimates here."""
    from ..boards import load_board

    b = load_board(board)
    sims = b.simulators
    if sims is None or all(getattr(sims, k, None) is None for k in ("qemu", "unicorn", "renode")):
        raise McucError(f"--cycle-budget needs a board with a simulator and a cycle model; {board!r} has none "
                        "(e.g. --board stm32f4-discovery)")


def _c_suffix(name: str) -> str:
    from ..codegen.names import c_ident

    return c_ident(name)


def estimate(model: onnx.ModelProto, x: np.ndarray, layer_names: list[str], board: str) -> Estimate:
    """Cycles of ``model`` (a QDQ model from ``mcuc quantize``) on one input sample ``x[:1]``."""
    from ..codegen import generate_project
    from ..ir import interpreter
    from ..pipeline import compile_model
    from ..sim.runner import cycle_model_text, run_firmware

    with tempfile.TemporaryDirectory(prefix="mcuc-cycles-") as d:
        p = Path(d) / "q.onnx"
        p.write_bytes(model.SerializeToString())
        g = compile_model(p, convention="onnx")
        proj = Path(d) / "fw"
        generate_project(g, board, proj, model_name="m", model_sha256="0" * 64)
        q = next((n for n in g.nodes if n.op == "quantize"), None)
        vals = interpreter.run(g, {g.inputs[0].name: np.asarray(x[:1], np.float32)}, keep=True)
        feed = vals[q.out.name] if q is not None else vals[g.inputs[0].name]
        run = run_firmware(proj, {g.inputs[0].name: feed}, sim="auto")
    if not run.cycles:
        raise McucError(f"the {run.simulator} run on {board} gave no cycle estimate")
    weighted = [li for li in run.layers if li["op"] in ("conv2d", "dense")]
    per: dict[str, int] = {}
    for name in layer_names:
        suffix = "_" + _c_suffix(name)
        hits = [li for li in weighted if li["name"].endswith(suffix)]
        if len(hits) != 1:
            raise McucError(f"cannot find the kernel of layer {name!r} in the generated code")
        per[name] = int(hits[0]["cycles"])
    return Estimate(int(run.cycles), per, cycle_model_text(board))
