"""Accuracy and weight flash of `mcuc quantize` on the digits nets (the README's table).

    .venv/bin/python -m bench.quantize [--json bench/quantize.json]
    .venv/bin/python -m bench.quantize --sweep [--out bench/sweep]   # the README's sweep tables
    .venv/bin/python -m bench.quantize --int16                         # docs/quantize.md's int16 table

With --sweep it runs `mcuc sweep` on the three contract nets (cnn, dwsep, resnet; every policy) and
on the width-multiplied depthwise-separable builder, on stm32f4-discovery (cycles: the Cortex-M4
timing model on one firmware run per point), and prints the markdown tables the README quotes.

Float accuracy (onnxruntime), int8 power-of-two PTQ and mixed 4/8-bit at 60% of the int8 weight
flash, on the 540-image digits test split, calibrated on 200 training images; weight flash is
what mcuc's code generator places in flash for the host board.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.quantize._helpers import (
    NETS,
    accuracy,
    compile_onnx,
    float_accuracy,
    quantized,
    weights_bytes,
)

SWEEPS = [("zoo_cnn", None), ("zoo_dwsep", None), ("zoo_resnet", None), ("digits", "0.5,1,2")]
POLICIES = "int8,int4,mixed:70%,mixed:55%,ternary,binary"


def sweep(out: Path) -> int:
    """Run the README's sweeps with the mcuc command line and print their tables."""
    import subprocess

    for builder, widths in SWEEPS:
        cmd = [sys.executable, "-m", "compiler", "sweep", "--builder", f"tests.quantize.sweep_models:{builder}",
               "--policies", POLICIES, "--board", "stm32f4-discovery", "-o", str(out / builder), "--force"]
        if widths:
            cmd += ["--widths", widths]
        print("$", " ".join(cmd[2:]), flush=True)
        r = subprocess.run(cmd, cwd=REPO, check=False)
        if r.returncode:
            return r.returncode
    for builder, _ in SWEEPS:
        data = json.loads((out / builder / "sweep.json").read_text())
        print(f"\n{data['model']} ({data['cycles']}):\n")
        print("| policy | width | accuracy (float) | weights flash B | arena B | est. cycles | Pareto |")
        print("|---|---|---|---|---|---|---|")
        for p in data["points"]:
            mark = ", ".join(k for k in ("flash", "cycles") if p[f"pareto_{k}"])
            print(f"| {p['policy']} | {p['width']:g} | {100 * p['accuracy']:.2f}% ({100 * p['float_accuracy']:.2f}%) | "
                  f"{p['weights_bytes']:,} | {p['arena_bytes']:,} | {p['cycles']:,} | {mark} |")
    return 0


def int16() -> int:
    """All-int8 against --int16-activations auto --arena-budget 150%: test-split accuracy and logit
    error (relative to the float logits' variance), arena for stm32f4-discovery, points chosen."""
    import numpy as np

    import tests.models as zoo
    from tests.quantize._helpers import digits_test

    def logit_error(name, model):
        x, _ = digits_test(name)
        f = zoo.run_ort(zoo.build(name).model, x)[0].astype(np.float64)
        return float(np.mean((zoo.run_ort(model, x)[0] - f) ** 2) / np.var(f))

    print("| net | float | all int8 | int8 + int16 | arena B int8 -> int16 | int16 points |")
    print("|---|---|---|---|---|---|")
    for name in NETS:
        r8, r = quantized(name), quantized(name, int16_activations="auto", arena_budget="150%")
        a = r.arena
        print(f"| {name} | {100 * float_accuracy(name):.2f} | {100 * accuracy(name, r8.model):.2f} "
              f"({logit_error(name, r8.model):.2e}) | {100 * accuracy(name, r.model):.2f} ({logit_error(name, r.model):.2e}) | "
              f"{a['all_int8_bytes']:,} -> {a['arena_bytes']:,} ({100 * a['arena_bytes'] / a['all_int8_bytes']:.0f}%) | "
              f"{', '.join(r.int16)} |")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, default=REPO / "bench" / "quantize.json")
    ap.add_argument("--sweep", action="store_true", help="run the README's mcuc sweeps and print their tables")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "sweep", help="with --sweep: where the sweeps go")
    ap.add_argument("--int16", action="store_true", help="print docs/quantize.md's int16-activations table")
    args = ap.parse_args(argv)
    if args.sweep:
        return sweep(args.out)
    if args.int16:
        return int16()
    rows = []
    for name in NETS:
        q8 = quantized(name).model
        mx = quantized(name, weight_bits="mixed", flash_budget="60%").model
        w8, wm = weights_bytes(compile_onnx(q8)), weights_bytes(compile_onnx(mx))
        rows.append({"net": name, "float": float_accuracy(name), "int8_pow2": accuracy(name, q8), "int8_weights_bytes": w8,
                     "mixed": accuracy(name, mx), "mixed_weights_bytes": wm})
    print(f"{'net':14s} {'float':>7s} {'int8 p2':>8s} {'loss':>6s} {'w8 B':>6s} {'mixed':>7s} {'loss':>6s} {'wmix B':>7s} {'flash':>6s}")
    for r in rows:
        print(f"{r['net']:14s} {r['float'] * 100:6.2f}% {r['int8_pow2'] * 100:7.2f}% {(r['int8_pow2'] - r['float']) * 100:+6.2f}"
              f" {r['int8_weights_bytes']:6d} {r['mixed'] * 100:6.2f}% {(r['mixed'] - r['float']) * 100:+6.2f}"
              f" {r['mixed_weights_bytes']:7d} {r['mixed_weights_bytes'] / r['int8_weights_bytes'] * 100:5.1f}%")
    args.json.write_text(json.dumps(rows, indent=1) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
