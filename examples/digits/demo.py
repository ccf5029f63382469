"""`make demo`: a CNN trained on scikit-learn's digits, quantized, compiled, run on an STM32 board.

Steps: train the float CNN (torch, cached) and quantize it with onnxruntime (examples/digits/
make_model.py); compile it with mcuc for a board (default stm32f4-discovery); build the firmware
and run the 540-image test split in one boot of the default simulator (Renode if installed, else
QEMU, else Unicorn; `--board host` runs natively instead); print the accuracies of the float
model, onnxruntime's int8 model and mcuc's firmware, whether the firmware equals mcuc's reference
interpreter bit for bit, the memory figures and per-layer MACs, instructions and estimated cycles
(Cortex-M4 model: not a measurement of silicon).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from compiler.boards import load_board  # noqa: E402
from compiler.codegen import generate_project  # noqa: E402
from compiler.io import from_device, to_device  # noqa: E402
from compiler.ir import interpreter  # noqa: E402
from compiler.ir.analysis import macs  # noqa: E402
from compiler.pipeline import compile_model  # noqa: E402
from compiler.sim import run_host_detailed  # noqa: E402
from compiler.sim.runner import run_firmware  # noqa: E402
from examples.digits import make_model  # noqa: E402
from tests.models import accuracy, run_ort  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "demo-out", help="working directory (default: demo-out/)")
    ap.add_argument("--board", default="stm32f4-discovery", help="board to compile for (default: stm32f4-discovery)")
    ap.add_argument("--sim", default="auto", help="simulator for firmware boards: auto, renode, qemu or unicorn")
    args = ap.parse_args(argv)
    con = Console(width=max(Console().width, 120))

    con.rule("1. train and quantize (examples/digits/make_model.py)")
    make_model.main(["--out", str(args.out)])
    x = np.load(args.out / "digits_test_x.npy")
    y = np.load(args.out / "digits_test_y.npy")
    float_acc = accuracy(run_ort((args.out / "digits_cnn_float.onnx").read_bytes(), x)[0], y)
    ort_acc = accuracy(run_ort((args.out / "digits_cnn_int8.onnx").read_bytes(), x)[0], y)

    con.rule(f"2. mcuc compile --board {args.board}")
    model = args.out / "digits_cnn_int8.onnx"
    g = compile_model(model)
    board = load_board(args.board)
    proj = args.out / f"digits_{board.name}"
    import hashlib

    man = generate_project(g, board, proj, model_name="digits_cnn", model_sha256=hashlib.sha256(model.read_bytes()).hexdigest(), force=True)
    con.print(f"C project: {proj}")

    feeds = {g.inputs[0].name: x}
    if board.simulators.host:
        con.rule("3. run the C natively on the test split")
        run = run_host_detailed(proj, to_device(g, feeds), profile=True)
        per_layer = {name: (None, ns / len(y)) for name, ns in run.layer_cycles.items()}
        where = "host"
    else:
        con.rule(f"3. run the firmware on the test split ({args.sim} simulator)")
        run = run_firmware(proj, to_device(g, feeds), sim=args.sim)
        per_layer = {li["name"]: (li["instructions"], li["cycles"]) for li in run.layers}
        where = f"{board.name} in {run.simulator}"
        con.print(f"simulator: {run.simulator} ({run.why}); firmware built with {run.toolchain}")
    outs = from_device(g, run.outputs)
    y_c = outs[g.outputs[0].name]
    y_ref = interpreter.run(g, feeds)[g.outputs[0].name]
    c_acc = accuracy(y_c, y)

    t = Table(title=f"digits CNN, {len(y)} test images")
    t.add_column("model")
    t.add_column("top-1 accuracy", justify="right")
    t.add_row("float (onnxruntime)", f"{float_acc * 100:.2f}%")
    t.add_row("int8 QDQ (onnxruntime)", f"{ort_acc * 100:.2f}%")
    t.add_row(f"int8 mcuc, {where}", f"{c_acc * 100:.2f}%")
    con.print(t)
    exact = np.array_equal(y_c, y_ref)
    con.print(f"output equals mcuc's reference interpreter bit for bit: [bold]{'yes' if exact else 'NO'}[/bold]")

    mem, flash = man["memory"], man["flash"]
    con.print(f"arena {mem['arena_bytes']} B (liveness lower bound {mem['lower_bound']} B, "
              f"sum of all tensors {mem['sum_of_tensors']} B); flash {flash['total_bytes']} B = "
              f"{flash['weights_bytes']} B weights + {flash['code_bytes']} B code")

    native = board.simulators.host
    title = ("per layer (host: wall-clock ns per image, not MCU cycles)" if native else
             "per layer, per image (cycles: estimated, Cortex-M4 model, zero wait states)")
    layers = Table(title=title)
    cols = ["layer", "op", "output", "MACs", "template"] + (["host ns"] if native else ["instructions", "est. cycles", "cyc/MAC"])
    for col in cols:
        layers.add_column(col, justify="left" if col in ("layer", "op", "output", "template") else "right", overflow="fold")
    nodes = [n for n in g.nodes if n.op not in ("quantize", "dequantize")]
    for info, node in zip(man["layers"], nodes):
        ins, cyc = per_layer.get(info["layer"], (None, None))
        mac = macs(node)
        row = [info["layer"], node.op, "x".join(map(str, node.out.type.shape)), f"{mac:,}",
               Path(info["template"]).name if info["template"] and info["template"] != "alias" else "(alias)"]
        if native:
            row.append("" if cyc is None else f"{cyc:,.0f}")
        else:
            row += ["" if ins is None else f"{ins:,}", "" if cyc is None else f"{cyc:,}",
                    f"{cyc / mac:.2f}" if mac and cyc else ""]
        layers.add_row(*row)
    con.print(layers)
    total = sum(macs(n) for n in nodes)
    if native:
        con.print(f"total {total:,} MACs per image")
    else:
        con.print(f"total {total:,} MACs, {run.instructions:,} instructions and {run.cycles:,} estimated cycles "
                  f"per image ({run.cycles / total:.2f} cyc/MAC; Cortex-M4 model, not silicon)")
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())
