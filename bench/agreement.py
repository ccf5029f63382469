"""Agreement of mcuc's interpreter with onnxruntime on every quantized test model.

    .venv/bin/python -m bench.agreement [--json bench/agreement.json]

Per model: the fraction of output elements equal and the largest difference in output steps
(the figures README.md quotes; tests/frontend/test_zoo_vs_ort.py holds the thresholds).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import tests.models as zoo  # noqa: E402
from tests.frontend.zoo_check import compare, compile_zoo, output_steps, run_interpreter  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, default=REPO / "bench" / "agreement.json")
    args = ap.parse_args(argv)
    rows = []
    for name in zoo.ZOO:
        if name.startswith("float_") or name == "qonnx_cnn_bipolar":
            continue
        z = zoo.build(name)
        with tempfile.TemporaryDirectory() as tmp:
            g = compile_zoo(z, Path(tmp))
        res = compare(run_interpreter(g, z), zoo.reference_outputs(z), output_steps(g))
        rows.append({"model": name, "family": z.family, "pow2": z.pow2, **res})
        print(f"{name:28s} {z.family:10s} equal {res['equal'] * 100:8.4f}%  max {res['max_steps']:.3f} steps")
    full = sum(r["equal"] == 1.0 for r in rows)
    print(f"{len(rows)} models, {full} with every output equal")
    args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
