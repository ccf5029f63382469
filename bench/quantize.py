"""Accuracy and weight flash of `mcuc quantize` on the digits nets (the README's table).

    .venv/bin/python -m bench.quantize [--json bench/quantize.json]

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

from tests.quantize._helpers import (  # noqa: E402
    NETS, accuracy, compile_onnx, float_accuracy, quantized, weights_bytes)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, default=REPO / "bench" / "quantize.json")
    args = ap.parse_args(argv)
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
