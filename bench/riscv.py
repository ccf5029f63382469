"""RISC-V section of ``make bench``: the MLPerf Tiny models on the gap8 board (RI5CY fabric
controller) in the RI5CY timing model, Xpulp kernels against the RV32IMC build of the same
kernels, beside the Cortex-M4 figures of the main bench.

    .venv/bin/python -m bench.riscv [--models kws,vww,ic,ad]

Both builds are the gap8 project with the same templates (templates/riscv-xpulp over riscv over
generic); the RV32IMC build compiles it without MCUC_XPULP, so runtime_c/include/mcuc_xpulp.h
falls back to its portable C. Both run in Unicorn (the Xpulp build through the load-time rewrite
of compiler/sim/riscv_xpulp.py) and are checked bit-exact against TFLite Micro's ``y_tflm``.
Cycles are ESTIMATES of the RI5CY model (compiler/sim/ri5cy.yaml: CV32E40P user manual cycle
table, zero wait states), not a GAP-8 measurement. MACs/cycle is reported per conv / pointwise
layer (whole layer: loads, MACs, requantization, loop overhead).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from compiler.boards import load_board
from compiler.codegen import generate_project, toolchain
from compiler.errors import McucError
from compiler.sim import firmware, runner

BOARD = "gap8"
PLAIN_BOARD = "qemu-riscv32-virt"
MLPERF = REPO.parent / "shared" / "models" / "mlperf_tiny"
RESULTS = REPO / "bench" / "results.json"
TARGET_MACS_PER_CYCLE = 2.0
MAC_TEMPLATES = ("conv2d_1x1.c.j2", "conv2d_im2col.c.j2")


def _build(proj: Path, board, *, xpulp: bool) -> firmware.Firmware:
    """The gap8 firmware with or without MCUC_XPULP (same sources, same flags otherwise)."""
    tc = toolchain.select(board)
    cflags = [f for f in tc.cflags if xpulp or f != "-DMCUC_XPULP"]
    cmd = ["make", "-B", "--no-print-directory", "PROFILE=1", "CFLAGS=" + " ".join(cflags)]
    r = subprocess.run(cmd, cwd=proj, capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise McucError(f"bench.riscv: build failed: {(r.stderr or r.stdout).strip().splitlines()[-1]}")
    man = firmware.read_manifest(proj)
    elf = proj / man["target"]
    return firmware.Firmware(elf, man, board, tc.description, firmware.elf_symbols(elf), firmware.image_bytes(elf))


def _run(proj: Path, fw, feeds, want, t_out):
    run = runner.run_firmware(proj, feeds, sim="unicorn", fw=fw)
    exact = bool(np.array_equal(run.outputs[t_out["graph_name"]].reshape(want.shape), want))
    return run, exact


def suite(tmp: Path, names, cortex_models=()) -> list[dict]:
    """One row per model: Xpulp and RV32IMC estimated RI5CY cycles, the Cortex-M4 cycles of the
    main bench when given, and MACs/cycle of each Xpulp conv / pointwise layer."""
    from compiler.pipeline import compile_model

    board = load_board(BOARD)
    if not cortex_models and RESULTS.is_file():  # run alone: the Cortex-M4 figures of the last `make bench`
        cortex_models = json.loads(RESULTS.read_text()).get("models", [])
    cm4 = {m["model"]: m["cycles"] for m in cortex_models}
    rows = []
    for name in names:
        path = MLPERF / f"{name}.onnx"
        if not path.exists():
            print(f"bench.riscv: {path} missing, model skipped")
            continue
        g = compile_model(path)
        io = np.load(MLPERF / f"{name}_io.npz")
        x, want = io["x_int8"][:1], io["y_tflm"][:1]
        proj = tmp / f"rv-{name}"
        man = generate_project(g, board, proj, model_name=name, model_sha256="0" * 64)
        t_in, t_out = man["inputs"][0], man["outputs"][0]
        feeds = {t_in["graph_name"]: x.reshape((1,) + tuple(t_in["shape"][1:]))}
        fast, fast_ok = _run(proj, _build(proj, board, xpulp=True), feeds, want, t_out)
        plain, plain_ok = _run(proj, _build(proj, board, xpulp=False), feeds, want, t_out)
        # The plain RV32IMC board with the portable kernels (templates/riscv over generic).
        vproj = tmp / f"rv-virt-{name}"
        generate_project(g, load_board(PLAIN_BOARD), vproj, model_name=name, model_sha256="0" * 64)
        virt, virt_ok = _run(vproj, firmware.build_firmware(vproj), feeds, want, t_out)
        macs = sum(li.get("macs", 0) for li in man["layers"])
        layers = []
        for lay, info in zip(fast.layers, man["layers"]):
            if (info["template"] or "").startswith("riscv-xpulp/") and info["template"].endswith(MAC_TEMPLATES):
                layers.append({"name": lay["name"], "template": info["template"], "macs": info["macs"],
                               "cycles": lay["cycles"], "macs_per_cycle": round(info["macs"] / lay["cycles"], 3)})
        rows.append({
            "model": name, "macs": macs, "xpulp_cycles": fast.cycles, "rv32imc_cycles": plain.cycles,
            "speedup": round(plain.cycles / fast.cycles, 2), "portable_rv32imc_cycles": virt.cycles,
            "cortex_m4_cycles": cm4.get(name),
            "xpulp_instructions": fast.instructions, "bit_exact_vs_tflm": fast_ok and plain_ok and virt_ok,
            "seconds_in_unicorn": round(fast.seconds, 1), "layers": layers,
        })
    return rows


def print_table(rows) -> None:
    print("\nRISC-V (gap8 fabric controller, RI5CY): cycles are ESTIMATES of the RI5CY timing model "
          "(compiler/sim/ri5cy.yaml, zero wait states), firmware run in Unicorn with Xpulp emulated.")
    print("Xpulp: the gap8 build; RV32IMC same kernels: that build without MCUC_XPULP (mcuc_xpulp.h's portable C); "
          "RV32IMC portable: qemu-riscv32-virt (templates/riscv + generic).")
    print(f"{'model':<6} {'MACs':>11} {'Xpulp cyc':>11} {'cyc/MAC':>8} {'RV32IMC same':>13} {'speedup':>8} "
          f"{'RV32IMC portable':>17} {'Cortex-M4 cyc':>14} exact(y_tflm)")
    for r in rows:
        cm4 = f"{r['cortex_m4_cycles']:,}" if r["cortex_m4_cycles"] else "-"
        print(f"{r['model']:<6} {r['macs']:>11,} {r['xpulp_cycles']:>11,} {r['xpulp_cycles'] / r['macs']:>8.2f} "
              f"{r['rv32imc_cycles']:>13,} {r['speedup']:>7.2f}x {r['portable_rv32imc_cycles']:>17,} {cm4:>14} "
              f"{'yes' if r['bit_exact_vs_tflm'] else 'NO'}")
    print(f"\nXpulp conv / pointwise layers, MACs per cycle (target >= {TARGET_MACS_PER_CYCLE}; whole layer incl. "
          "requantization; the 4x2 hardware loop alone does 32 MACs in 14 cycles = 2.29):")
    for r in rows:
        if r["layers"]:
            v = [li["macs_per_cycle"] for li in r["layers"]]
            best = max(r["layers"], key=lambda li: li["macs_per_cycle"])
            met = sum(1 for x in v if x >= TARGET_MACS_PER_CYCLE)
            print(f"  {r['model']}: {len(v)} layers, {min(v):.2f}..{max(v):.2f} (median {float(np.median(v)):.2f}); "
                  f"{met} at target; best {best['name']} ({best['macs']:,} MACs)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.riscv", description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="kws,vww,ic,ad")
    ap.add_argument("--out", default=None, help="write the rows as JSON to this file")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mcuc-bench-rv-") as td:
        rows = suite(Path(td), [m for m in args.models.split(",") if m])
    print_table(rows)
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1) + "\n")
    print(f"({time.perf_counter() - t0:.1f} s)")
    return 0 if all(r["bit_exact_vs_tflm"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
