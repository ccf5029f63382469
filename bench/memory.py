"""Arena, liveness lower bound and flash of the test models and the MLPerf Tiny models.

    .venv/bin/python -m bench.memory [--json bench/memory.json]

The arena is the static buffer the generated C uses; the lower bound is the largest sum of
simultaneously live tensors (scratch included); sum-of-tensors is what an allocator without
reuse would need. Graph inputs and outputs live in the caller's buffers and are not counted.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from compiler.boards import load_board  # noqa: E402
from compiler.codegen import render_project  # noqa: E402
from compiler.pipeline import compile_model  # noqa: E402

MLPERF = REPO.parent / "shared" / "models" / "mlperf_tiny"


def figures(path: Path, name: str, convention: str = "auto") -> dict:
    g = compile_model(path, convention=convention)
    r = render_project(g, load_board("host"), model_name=name, model_sha256="0" * 64)
    m = r.manifest
    return {"model": name, "arena_bytes": m["memory"]["arena_bytes"], "lower_bound": m["memory"]["lower_bound"],
            "sum_of_tensors": m["memory"]["sum_of_tensors"], "weights_bytes": m["flash"]["weights_bytes"],
            "code_bytes_host": m["flash"]["code_bytes"]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, default=REPO / "bench" / "memory.json")
    args = ap.parse_args(argv)
    rows = []
    import tests.models as zoo

    with tempfile.TemporaryDirectory() as tmp:
        for name in zoo.ZOO:
            if name.startswith("float_") or name == "qonnx_cnn_bipolar":
                continue
            p = Path(tmp) / f"{name}.onnx"
            p.write_bytes(zoo.build(name).model.SerializeToString())
            rows.append(figures(p, name, "onnx"))
    for name in ("kws", "vww", "ic", "ad"):
        if (MLPERF / f"{name}.onnx").exists():
            rows.append(figures(MLPERF / f"{name}.onnx", f"mlperf_{name}"))
    print(f"{'model':28s} {'arena':>8s} {'lower bd':>8s} {'sum':>8s} {'weights':>8s}")
    for r in rows:
        flag = "" if r["arena_bytes"] == r["lower_bound"] else "  (arena > lower bound)"
        print(f"{r['model']:28s} {r['arena_bytes']:8d} {r['lower_bound']:8d} {r['sum_of_tensors']:8d} {r['weights_bytes']:8d}{flag}")
    args.json.write_text(json.dumps(rows, indent=1) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
