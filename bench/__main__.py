"""Kernel and whole-model benchmark on the Cortex-M4 cycle model (``make bench``).

    .venv/bin/python -m bench [--quick] [--out bench]

Builds the per-layer suite of /work/shared/notes/anchors.md (each layer a one-layer integer IR
graph with the listed shapes, random int8 data and per-channel TFLite requantization) and the
four MLPerf Tiny models for stm32f4-discovery, runs them in Unicorn and reports the estimated
cycles of the Cortex-M4 timing model (zero wait states, pipeline refill P = 2; not a real board)
next to CMSIS-NN's cycles in the same model. Every output is checked bit-exact (layers against
the reference interpreter, models against TFLite Micro's ``y_tflm``). Writes bench/results.json
and bench/results.png.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from compiler.boards import load_board
from compiler.codegen import generate_project
from compiler.io import from_device, to_device
from compiler.ir import interpreter
from compiler.sim import firmware, runner
from tests.codegen._graphs import Builder  # the randomized one-layer graph builder

BOARD = "stm32f4-discovery"
MLPERF = REPO.parent / "shared" / "models" / "mlperf_tiny"

# anchors.md: CMSIS-NN in the same cycle model. (name, MACs or elements, cycles)
CMSIS_MODELS = {"kws": (2_656_768, 9_190_265), "vww": (7_489_664, 29_242_640),
                "ic": (12_501_632, 35_980_246), "ad": (264_192, 712_098)}
TARGET_MODEL = {"kws": 0.5, "vww": 0.5, "ic": 0.5, "ad": 0.8}


def _relu(v):
    """The layer's output as the MLPerf models quantize a fused ReLU: zero point -128, clamp at it."""
    v.producer.attrs.update(out_zp=-128, act=(-128, 127))
    return v


def _conv(h, w, c, o, k, s=1, pads=(0, 0, 0, 0), groups=1, relu=True):
    def build(b):
        v = b.conv(h=h, w=w, c=c, o=o, k=k, stride=(s, s), pads=pads, groups=groups)
        return _relu(v) if relu else v
    return build


def _dw(h, w, c, k=(3, 3), s=1, pads=(1, 1, 1, 1)):
    return _conv(h, w, c, c, k, s, pads, groups=c)


def _fc(k, o, relu):
    def build(b):
        v = b.dense(k=k, o=o)
        return _relu(v) if relu else v
    return build


def _add(shape):
    def build(b):
        return b.add(b.inp(shape), b.inp(shape), "tflite", shape)
    return build


# (name, group, builder, CMSIS-NN cycles, kind) -- kind 'mac' (cycles per MAC) or 'elem'
# (cycles per output element); group = one firmware (kept small enough for the board's RAM).
# Layers followed by a ReLU in the model (all but IC's pre-add convolutions and the classifiers)
# get the models' fused ReLU.
LAYERS = [
    ("kws_conv1", "kws", _conv(49, 10, 1, 64, (10, 4), 2, (4, 1, 5, 1)), 1_370_534, "mac"),
    ("kws_dw", "kws", _dw(25, 5, 64), 678_111, "mac"),
    ("kws_pw", "kws", _conv(25, 5, 64, 64, (1, 1)), 1_255_344, "mac"),
    ("kws_avgpool", "kws", lambda b: b.pool("avgpool", h=25, w=5, c=64, k=(25, 5), stride=(1, 1), pads=(0, 0, 0, 0)),
     75_875, "elem_in"),
    ("kws_fc", "kws", _fc(64, 12, False), 2_692, "mac"),
    ("ic_conv1", "ic1", _conv(32, 32, 3, 16, (3, 3), 1, (1, 1, 1, 1)), 2_618_905, "mac"),
    ("ic_conv2", "ic1", _conv(32, 32, 16, 16, (3, 3), 1, (1, 1, 1, 1)), 6_648_486, "mac"),
    ("ic_conv3_s2", "ic1", _conv(32, 32, 16, 32, (3, 3), 2, (0, 0, 1, 1)), 3_018_469, "mac"),
    ("ic_conv4", "ic2", _conv(16, 16, 32, 32, (3, 3), 1, (1, 1, 1, 1), relu=False), 5_445_110, "mac"),
    ("ic_sc1x1_s2", "ic1", _conv(32, 32, 16, 32, (1, 1), 2, relu=False), 671_018, "mac"),
    ("ic_conv5_s2", "ic2", _conv(16, 16, 32, 64, (3, 3), 2, (0, 0, 1, 1)), 2_610_985, "mac"),
    ("ic_conv6", "ic2", _conv(8, 8, 64, 64, (3, 3), 1, (1, 1, 1, 1), relu=False), 4_959_258, "mac"),
    ("ic_add", "ic2", _add((1, 8, 8, 64)), 399_598, "elem"),
    ("ic_fc", "ic2", _fc(64, 10, False), 2_270, "mac"),
    ("vww_conv1", "vww1", _conv(96, 96, 3, 8, (3, 3), 2, (0, 0, 1, 1)), 3_879_056, "mac"),
    ("vww_dw1", "vww2", _dw(48, 48, 8), 1_872_069, "mac"),
    ("vww_pw1", "vww2", _conv(48, 48, 8, 16, (1, 1)), 2_305_512, "mac"),
    ("vww_dw3", "vww3", _dw(24, 24, 32), 1_670_157, "mac"),
    ("vww_pw3", "vww3", _conv(24, 24, 32, 32, (1, 1)), 1_863_616, "mac"),
    ("vww_pw7", "vww3", _conv(6, 6, 128, 128, (1, 1)), 1_283_920, "mac"),
    ("vww_dw13", "vww3", _dw(3, 3, 256), 172_269, "mac"),
    ("vww_pw13", "vww3", _conv(3, 3, 256, 256, (1, 1)), 1_448_592, "mac"),
    ("ad_fc1", "ad", _fc(640, 128, True), 197_219, "mac"),
    ("ad_fc2", "ad", _fc(128, 128, True), 45_657, "mac"),
    ("softmax", "ad", lambda b: b.softmax((1, 10)), 6_189, "elem"),
    ("maxpool_2x2", "ad", lambda b: b.pool("maxpool", h=32, w=32, c=16, k=(2, 2), stride=(2, 2), pads=(0, 0, 0, 0)),
     200_884, "elem"),
]


def _run_group(names, tmp: Path, seed: int) -> dict:
    """One firmware holding the layers ``names``; their figures by name."""
    b = Builder(seed, "bench")
    nodes = {}
    for name, _, build, _, _ in LAYERS:
        if name in names:
            v = b.out(build(b))
            nodes[name] = v
    g = b.g
    proj = tmp / f"layers_{seed}"
    man = generate_project(g, load_board(BOARD), proj, model_name="bench", model_sha256="0" * 64)
    rng = np.random.default_rng(seed)
    feeds = {v.name: rng.integers(v.type.dtype.qmin, v.type.dtype.qmax + 1, v.type.shape).astype(v.type.dtype.np)
             for v in g.inputs}
    run = runner.run_firmware(proj, to_device(g, feeds), sim="unicorn")
    want = interpreter.run(g, feeds)
    got = from_device(g, run.outputs)
    out = {}
    for (name, v), lay, info in zip(nodes.items(), run.layers, man["layers"]):
        assert lay["name"] == info["layer"]
        elements = int(np.prod(v.type.shape))
        inputs = int(np.prod(v.producer.inputs[0].type.shape))
        out[name] = {"cycles": lay["cycles"], "instructions": lay["instructions"], "macs": info["macs"],
                     "elements": elements, "input_elements": inputs, "template": info["template"],
                     "bit_exact": bool(np.array_equal(got[v.name], want[v.name]))}
    return out


def layer_suite(tmp: Path) -> list[dict]:
    groups = defaultdict(list)
    for name, grp, *_ in LAYERS:
        groups[grp].append(name)
    figures = {}
    for seed, names in enumerate(groups.values()):
        figures.update(_run_group(names, tmp, seed))
    rows = []
    for name, _, _, cmsis, kind in LAYERS:
        f = figures[name]
        row = dict(layer=name, cmsis_cycles=cmsis, ratio=round(f["cycles"] / cmsis, 3), kind=kind, **f)
        if kind == "mac":
            row["cyc_per_mac"] = round(f["cycles"] / f["macs"], 3)
            row["cmsis_cyc_per_mac"] = round(cmsis / f["macs"], 3)
        else:
            per = f["input_elements"] if kind == "elem_in" else f["elements"]
            row["cyc_per_element"] = round(f["cycles"] / per, 2)
            row["cmsis_cyc_per_element"] = round(cmsis / per, 2)
        rows.append(row)
    return rows


def model_suite(tmp: Path, names) -> list[dict]:
    from compiler.pipeline import compile_model

    rows = []
    for name in names:
        path = MLPERF / f"{name}.onnx"
        if not path.exists():
            print(f"bench: {path} missing, model skipped")
            continue
        g = compile_model(path)
        io = np.load(MLPERF / f"{name}_io.npz")
        x, want = io["x_int8"], io["y_tflm"]
        proj = tmp / name
        man = generate_project(g, load_board(BOARD), proj, model_name=name, model_sha256="0" * 64)
        t_in, t_out = man["inputs"][0], man["outputs"][0]
        feeds = {t_in["graph_name"]: x[:1].reshape((1,) + tuple(t_in["shape"][1:]))}
        fw = firmware.build_firmware(proj)
        run = runner.run_firmware(proj, feeds, sim="unicorn", fw=fw)
        exact = bool(np.array_equal(run.outputs[t_out["graph_name"]].reshape(want[:1].shape), want[:1]))
        macs, cmsis = CMSIS_MODELS[name]
        # Where the cycles go: by kernel template (and op for aliases / copies).
        profile = defaultdict(lambda: {"cycles": 0, "macs": 0, "layers": 0})
        for lay, info in zip(run.layers, man["layers"]):
            key = info["template"] or info["op"]
            profile[key]["cycles"] += lay["cycles"]
            profile[key]["macs"] += info["macs"]
            profile[key]["layers"] += 1
        fl = man["flash"]
        rows.append({
            "model": name, "macs": macs, "cycles": run.cycles, "cyc_per_mac": round(run.cycles / macs, 3),
            "cmsis_cycles": cmsis, "ratio": round(run.cycles / cmsis, 3), "target_ratio": TARGET_MODEL[name],
            "bit_exact_vs_tflm": exact, "flash_bytes": (fl["total_bytes"] or 0) + (fl.get("runtime_bytes") or 0),
            "code_bytes": fl["code_bytes"], "weights_bytes": fl["weights_bytes"],
            # Start-up, console, timer and the harness around the model (not weights, not kernels).
            "runtime_bytes": fl.get("runtime_bytes"),
            "arena_bytes": man["memory"]["arena_bytes"],
            # Liveness lower bound of tensors and kernel scratch (the largest scratch also apart),
            # TFLite Micro's greedy-by-size arena, and no reuse at all.
            "arena_lower_bound": man["memory"]["lower_bound"], "scratch_max": man["memory"]["scratch_max"],
            "arena_tflm_greedy": man["memory"]["greedy_by_size"], "sum_of_tensors": man["memory"]["sum_of_tensors"],
            "profile": dict(sorted(profile.items(), key=lambda kv: -kv[1]["cycles"])),
            "layers": [{"name": lay["name"], "template": info["template"], "macs": info["macs"], "cycles": lay["cycles"]}
                       for lay, info in zip(run.layers, man["layers"])],
        })
    return rows


def targets(layers, models) -> list[tuple[str, bool, str]]:
    out = []
    for m in models:
        out.append((f"{m['model']} whole model <= {m['target_ratio']}x CMSIS-NN", m["ratio"] <= m["target_ratio"],
                    f"{m['ratio']:.3f}x"))
    mac = [r for r in layers if r["kind"] == "mac"]
    slow = [r["layer"] for r in mac if r["ratio"] > 1.0]
    out.append(("no MAC layer slower than CMSIS-NN", not slow, ", ".join(slow) or "all faster"))
    for r in mac:
        if r["layer"].split("_")[1].startswith("dw") and r["template"].endswith("conv2d_dw.c.j2"):
            out.append((f"{r['layer']} depthwise 3x3 <= 4 cyc/MAC", r["cyc_per_mac"] <= 4, f"{r['cyc_per_mac']}"))
    for r in mac:
        if "pw" in r["layer"] or "sc1x1" in r["layer"]:
            k = {"kws_pw": 64, "vww_pw1": 8, "vww_pw3": 32, "vww_pw7": 128, "vww_pw13": 256, "ic_sc1x1_s2": 16}[r["layer"]]
            if k >= 32:
                out.append((f"{r['layer']} pointwise (K={k}) <= 1.3 cyc/MAC", r["cyc_per_mac"] <= 1.3, f"{r['cyc_per_mac']}"))
    for m in models:
        out.append((f"{m['model']} arena <= liveness lower bound (tensors + scratch)",
                    m["arena_bytes"] <= m["arena_lower_bound"], f"{m['arena_bytes']:,} <= {m['arena_lower_bound']:,} B"))
    for m in models:
        rt = m["runtime_bytes"]
        out.append((f"{m['model']} runtime flash beyond weights and kernels <= 2 KB", rt is not None and rt <= 2048,
                    f"{rt} B"))
    for r in layers:
        if r["layer"] == "ic_add":
            out.append(("int8 add <= 10 cycles/element", r["cyc_per_element"] <= 10, f"{r['cyc_per_element']}"))
    return out


def chart(layers, models, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(15, 6), gridspec_kw={"width_ratios": [4, 1]})
    names = [r["layer"] for r in layers]
    xs = np.arange(len(names))
    a.bar(xs, [r["ratio"] for r in layers], color=["tab:green" if r["ratio"] <= 1 else "tab:red" for r in layers])
    a.axhline(1.0, color="k", lw=0.8)
    a.set_xticks(xs, names, rotation=70, ha="right", fontsize=8)
    a.set_ylabel("mcuc cycles / CMSIS-NN cycles (lower is better)")
    a.set_title("Per layer, Cortex-M4 cycle model (estimated, P=2)")
    if models:
        xm = np.arange(len(models))
        b.bar(xm, [m["ratio"] for m in models], color="tab:blue")
        b.scatter(xm, [m["target_ratio"] for m in models], marker="_", s=400, color="k", label="target")
        b.set_xticks(xm, [m["model"] for m in models])
        b.axhline(1.0, color="k", lw=0.8)
        b.set_title("Whole models")
        b.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(REPO / "bench"), help="directory for results.json and results.png")
    ap.add_argument("--models", default="kws,vww,ic,ad", help="comma-separated MLPerf models ('' for none)")
    ap.add_argument("--no-layers", action="store_true", help="skip the per-layer suite")
    ap.add_argument("--no-riscv", action="store_true", help="skip the RISC-V (gap8, RI5CY model) section")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    out = Path(args.out)
    with tempfile.TemporaryDirectory(prefix="mcuc-bench-") as td:
        tmp = Path(td)
        layers = [] if args.no_layers else layer_suite(tmp)
        models = model_suite(tmp, [m for m in args.models.split(",") if m])
        # The RISC-V section has its own module (bench/riscv.py) and its own board.
        from bench import riscv as riscv_bench

        rv = [] if args.no_riscv else riscv_bench.suite(tmp, [m for m in args.models.split(",") if m], models)
    print("Cycles are ESTIMATES: Cortex-M4 instruction-class timing model (zero wait states, P=2), "
          f"firmware for {BOARD} run in Unicorn; CMSIS-NN figures from anchors.md in the same model.\n")
    if layers:
        print(f"{'layer':<13} {'kernel':<30} {'MACs':>9} {'cycles':>10} {'cyc/MAC':>8} {'CMSIS-NN':>10} "
              f"{'CMSIS c/M':>9} {'ratio':>6} exact")
        for r in layers:
            per = r.get("cyc_per_mac", r.get("cyc_per_element"))
            cper = r.get("cmsis_cyc_per_mac", r.get("cmsis_cyc_per_element"))
            unit = "" if r["kind"] == "mac" else "/el"
            print(f"{r['layer']:<13} {r['template']:<30} {r['macs']:>9,} {r['cycles']:>10,} {str(per) + unit:>8} "
                  f"{r['cmsis_cycles']:>10,} {str(cper) + unit:>9} {r['ratio']:>6.3f} {'yes' if r['bit_exact'] else 'NO'}")
    if models:
        print(f"\n{'model':<6} {'MACs':>11} {'cycles':>11} {'cyc/MAC':>8} {'CMSIS-NN':>11} {'ratio':>6} {'target':>6} "
              f"{'flash B':>9} {'code B':>8} {'rt B':>6} {'arena B':>8} exact(y_tflm)")
        for m in models:
            print(f"{m['model']:<6} {m['macs']:>11,} {m['cycles']:>11,} {m['cyc_per_mac']:>8} {m['cmsis_cycles']:>11,} "
                  f"{m['ratio']:>6.3f} {m['target_ratio']:>6} {m['flash_bytes']:>9,} {m['code_bytes'] or 0:>8,} "
                  f"{m['runtime_bytes'] or 0:>6,} "
                  f"{m['arena_bytes']:>8,} {'yes' if m['bit_exact_vs_tflm'] else 'NO'}")
        print(f"\n{'model':<6} {'arena B':>8} {'bound B':>8} {'scratch':>8} {'TFLM greedy':>11} {'no reuse':>9}   "
              "(bound: largest live tensors + kernel scratch)")
        for m in models:
            print(f"{m['model']:<6} {m['arena_bytes']:>8,} {m['arena_lower_bound']:>8,} {m['scratch_max']:>8,} "
                  f"{m['arena_tflm_greedy']:>11,} {m['sum_of_tensors']:>9,}")
        print("\nWhere the cycles go (share of each model's cycles, by kernel template):")
        for m in models:
            parts = [f"{k.split('/')[-1].removesuffix('.c.j2')} {v['cycles'] / m['cycles']:.0%}"
                     + (f" ({v['cycles'] / v['macs']:.2f} c/MAC)" if v["macs"] else "")
                     for k, v in m["profile"].items() if v["cycles"] / max(1, m["cycles"]) >= 0.005]
            print(f"  {m['model']}: " + ", ".join(parts))
    tg = targets(layers, models)
    print("\nTargets:")
    for what, ok, val in tg:
        print(f"  [{'met' if ok else 'MISSED'}] {what}: {val}")
    if rv:
        riscv_bench.print_table(rv)
    res = {"board": BOARD, "cycles": "estimated (Cortex-M4 timing model, zero wait states, P=2)", "layers": layers,
           "riscv": {"board": riscv_bench.BOARD, "cycles": "estimated (RI5CY timing model, zero wait states)", "models": rv},
           "models": models, "targets": [{"target": w, "met": ok, "value": v} for w, ok, v in tg],
           "seconds": round(time.perf_counter() - t0, 1)}
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(res, indent=1) + "\n")
    chart(layers, models, out / "results.png")
    print(f"\nwrote {out / 'results.json'} and {out / 'results.png'} ({res['seconds']} s)")
    bad = [r["layer"] for r in layers if not r["bit_exact"]] + [m["model"] for m in models if not m["bit_exact_vs_tflm"]]
    bad += [f"{m['model']} (gap8)" for m in rv if not m["bit_exact_vs_tflm"]]
    if bad:
        print(f"NOT BIT-EXACT: {', '.join(bad)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
