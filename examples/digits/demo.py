"""`make demo`: a CNN trained on scikit-learn's digits, quantized, compiled to C and run.

Steps: train the float CNN (torch, cached) and quantize it with onnxruntime (examples/digits/
make_model.py); compile it with mcuc for a board; run the C on the 540-image test split; print
the accuracies of the float model, onnxruntime's int8 model and mcuc's C, whether the C equals
mcuc's reference interpreter bit for bit, the memory figures and a per-layer table.
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
from examples.digits import make_model  # noqa: E402
from tests.models import accuracy, run_ort  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "demo-out", help="working directory (default: demo-out/)")
    ap.add_argument("--board", default="host", help="board to compile for (default: host)")
    args = ap.parse_args(argv)
    con = Console()

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

    con.rule("3. run the C on the test split")
    feeds = {g.inputs[0].name: x}
    run = run_host_detailed(proj, to_device(g, feeds), profile=True)
    outs = from_device(g, run.outputs)
    y_c = outs[g.outputs[0].name]
    y_ref = interpreter.run(g, feeds)[g.outputs[0].name]
    c_acc = accuracy(y_c, y)

    t = Table(title=f"digits CNN, {len(y)} test images")
    t.add_column("model")
    t.add_column("top-1 accuracy", justify="right")
    t.add_row("float (onnxruntime)", f"{float_acc * 100:.2f}%")
    t.add_row("int8 QDQ (onnxruntime)", f"{ort_acc * 100:.2f}%")
    t.add_row(f"int8 mcuc C on {board.name}", f"{c_acc * 100:.2f}%")
    con.print(t)
    exact = np.array_equal(y_c, y_ref)
    con.print(f"C output equals mcuc's reference interpreter bit for bit: [bold]{'yes' if exact else 'NO'}[/bold]")

    mem, flash = man["memory"], man["flash"]
    con.print(f"arena {mem['arena_bytes']} B (liveness lower bound {mem['lower_bound']} B, "
              f"sum of all tensors {mem['sum_of_tensors']} B); flash {flash['total_bytes']} B = "
              f"{flash['weights_bytes']} B weights + {flash['code_bytes']} B code")

    layers = Table(title="per layer (host times are wall-clock nanoseconds per image, not MCU cycles)")
    for col in ("layer", "op", "output", "MACs", "template", "host ns/image"):
        layers.add_column(col, justify="right" if col in ("MACs", "host ns/image") else "left")
    nodes = [n for n in g.nodes if n.op not in ("quantize", "dequantize")]
    for info, node in zip(man["layers"], nodes):
        ns = run.layer_cycles.get(info["layer"])
        layers.add_row(info["layer"], node.op, "x".join(map(str, node.out.type.shape)), f"{macs(node):,}",
                       Path(info["template"]).name if info["template"] and info["template"] != "alias" else "(alias)",
                       "" if ns is None else f"{ns / len(y):,.0f}")
    con.print(layers)
    total = sum(macs(n) for n in nodes)
    con.print(f"total {total:,} MACs per image")
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())
