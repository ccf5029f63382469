"""``mcuc profile``: run one model on one board and write ``index.html`` with PNG charts.

The report shows the estimated cycles per layer (the board's cycle model, never a silicon
measurement), cycles/MAC per layer against the core's physical floor (``cores.yaml``), the arena
timeline (which tensor lives at which offset during which layers, from the memory plan in
manifest.json), the flash breakdown (weights per layer from the manifest, code per kernel from
the ELF's symbol sizes) and, given labels or reference outputs, the accuracy. The PNGs are
written beside the HTML and embedded in it as data URIs, so the page opens from disk alone.
"""

from __future__ import annotations

import base64
import html
import json
import os
import tempfile
from functools import cache
from pathlib import Path

import numpy as np
import yaml

from .. import __version__
from ..errors import McucError

CORES_FILE = Path(__file__).with_name("cores.yaml")
CHARTS = ("cycles", "cycles_per_mac", "arena", "flash")


@cache
def _cores() -> tuple[dict, ...]:
    return tuple(yaml.safe_load(CORES_FILE.read_text())["cores"])


def peak(board) -> dict | None:
    """The core's cycles-per-MAC floor for ``board`` (first matching entry of cores.yaml)."""
    for c in _cores():
        if c["core"] == board.core and set(c.get("isa", [])) <= set(board.isa):
            return c
    return None


def elf_sizes(elf: Path) -> dict:
    """Function and object symbol sizes, and the bytes of executable sections, of an ELF."""
    from elftools.elf.constants import SH_FLAGS
    from elftools.elf.elffile import ELFFile
    from elftools.elf.sections import SymbolTableSection

    funcs: dict[str, int] = {}
    objects: dict[str, int] = {}
    with open(elf, "rb") as f:
        e = ELFFile(f)
        text = sum(int(s["sh_size"]) for s in e.iter_sections() if s["sh_flags"] & SH_FLAGS.SHF_EXECINSTR)
        for sec in e.iter_sections():
            if not isinstance(sec, SymbolTableSection):
                continue
            for s in sec.iter_symbols():
                kind = s["st_info"]["type"]
                if s.name and int(s["st_size"]) > 0:
                    if kind == "STT_FUNC":
                        funcs[s.name] = int(s["st_size"])
                    elif kind == "STT_OBJECT":
                        objects[s.name] = int(s["st_size"])
    return {"text_bytes": text, "functions": funcs, "objects": objects}


def _accuracy(outputs: dict[str, np.ndarray], first: str, labels_path: str | None, reference_path: str | None,
              n: int) -> dict:
    acc: dict = {}
    y = np.asarray(outputs[first])
    if labels_path:
        try:
            labels = np.load(labels_path, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise McucError(f"cannot read labels: {e}", where=labels_path) from None
        labels = np.asarray(labels).reshape(-1)
        if labels.shape[0] != n or labels.dtype.kind not in "iu":
            raise McucError(f"labels: expected {n} integer class indices, got {labels.dtype} {labels.shape}",
                            where=labels_path)
        pred = y.reshape(n, -1).argmax(axis=1)
        acc["labels"] = {"samples": n, "correct": int(np.sum(pred == labels)), "top1": float(np.mean(pred == labels))}
    if reference_path:
        try:
            ref = np.load(reference_path, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise McucError(f"cannot read the reference outputs: {e}", where=reference_path) from None
        ref = ref[ref.files[0]] if isinstance(ref, np.lib.npyio.NpzFile) and first not in ref.files else \
            ref[first] if isinstance(ref, np.lib.npyio.NpzFile) else ref
        if ref.size != y.size:
            raise McucError(f"reference outputs hold {ref.size} values, the model produced {y.size}", where=reference_path)
        a, b = y.astype(np.float64).reshape(n, -1), np.asarray(ref, np.float64).reshape(n, -1)
        d = np.abs(a - b)
        acc["reference"] = {"elements": int(d.size), "equal": float(np.mean(d == 0)), "max_abs_diff": float(d.max()),
                            "argmax_agree": float(np.mean(a.argmax(1) == b.argmax(1)))}
    return acc


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    # A fixed creation date keeps the PNG bytes a function of the data.
    fig.savefig(path, dpi=100, metadata={"Software": None})
    _plt().close(fig)


def chart_cycles(layers: list[dict], path: Path, title: str) -> None:
    plt = _plt()
    names = [li["name"] for li in layers]
    vals = [li["cycles"] or 0 for li in layers]
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(names) + 1.6))
    bars = ax.barh(names, vals, color="#3b75af")
    ax.invert_yaxis()
    ax.bar_label(bars, labels=[f"{v:,}" for v in vals], padding=3, fontsize=8)
    ax.set_xlabel("cycles per inference (estimated)")
    ax.set_title(title, fontsize=10)
    ax.margins(x=0.15)
    _save(fig, path)


def chart_cycles_per_mac(layers: list[dict], floor: dict | None, path: Path) -> None:
    plt = _plt()
    mac = [li for li in layers if li["macs"] and li["cycles"]]
    names = [li["name"] for li in mac]
    vals = [li["cycles"] / li["macs"] for li in mac]
    fig, ax = plt.subplots(figsize=(9, 0.45 * max(1, len(names)) + 1.6))
    bars = ax.barh(names, vals, color="#e07b39")
    ax.invert_yaxis()
    ax.bar_label(bars, labels=[f"{v:.2f}" for v in vals], padding=3, fontsize=8)
    if floor is not None:
        ax.axvline(floor["cycles_per_mac"], color="#b2182b", linestyle="--",
                   label=f"physical floor {floor['cycles_per_mac']} cyc/MAC ({floor['instruction']})")
        ax.legend(loc="lower right", fontsize=8)
    ax.set_xlabel("estimated cycles per MAC")
    ax.set_title("cycles/MAC per layer against the core's floor", fontsize=10)
    ax.margins(x=0.15)
    _save(fig, path)


def chart_arena(buffers: list[dict], arena_bytes: int, layer_names: list[str], path: Path) -> None:
    plt = _plt()
    from matplotlib.patches import Rectangle

    fig, ax = plt.subplots(figsize=(9, 4.5))
    colors = plt.get_cmap("tab20")
    for i, b in enumerate(buffers):
        x0, x1 = b["first_layer"], b["last_layer"] + 1
        r = Rectangle((x0, b["offset"]), x1 - x0, b["bytes"], facecolor=colors(i % 20),
                      edgecolor="black", linewidth=0.6, hatch="//" if b["kind"] == "scratch" else None, alpha=0.85)
        ax.add_patch(r)
        ax.text((x0 + x1) / 2, b["offset"] + b["bytes"] / 2, f"{b['name']}\n{b['bytes']:,} B", ha="center",
                va="center", fontsize=7, clip_on=True)
    n = max(len(layer_names), max((b["last_layer"] + 1 for b in buffers), default=1))
    ax.axhline(arena_bytes, color="#b2182b", linestyle="--", label=f"arena {arena_bytes:,} B")
    ax.set_xlim(0, n)
    ax.set_ylim(0, max(arena_bytes, 1) * 1.08)
    ax.set_xticks([i + 0.5 for i in range(len(layer_names))])
    ax.set_xticklabels(layer_names, rotation=30, ha="right", fontsize=7)
    ax.set_ylabel("arena offset (bytes)")
    ax.set_title("arena timeline: which tensor lives where, during which layers", fontsize=10)
    ax.legend(loc="upper right", fontsize=8)
    _save(fig, path)


def chart_flash(weights: dict[str, int], code: dict[str, int], other_code: int, path: Path) -> None:
    plt = _plt()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 0.4 * max(len(weights), len(code) + 1, 3) + 1.8))
    w_names, w_vals = list(weights), list(weights.values())
    b1 = a1.barh(w_names, w_vals, color="#5aae61")
    a1.invert_yaxis()
    a1.bar_label(b1, labels=[f"{v:,}" for v in w_vals], padding=3, fontsize=8)
    a1.set_title(f"weights per layer ({sum(w_vals):,} B)", fontsize=10)
    a1.set_xlabel("bytes")
    a1.margins(x=0.2)
    c_names, c_vals = list(code) + ["rest of the image"], list(code.values()) + [other_code]
    b2 = a2.barh(c_names, c_vals, color=["#762a83"] * len(code) + ["#bbbbbb"])
    a2.invert_yaxis()
    a2.bar_label(b2, labels=[f"{v:,}" for v in c_vals], padding=3, fontsize=8)
    a2.set_title(f"code per kernel ({sum(code.values()):,} B kernels)", fontsize=10)
    a2.set_xlabel("bytes (ELF symbol sizes)")
    a2.tick_params(axis="y", labelsize=7)
    a2.margins(x=0.2)
    _save(fig, path)


def _table(head: list[str], rows: list[list]) -> str:
    h = "".join(f"<th>{html.escape(str(c))}</th>" for c in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{h}</tr></thead><tbody>{body}</tbody></table>"


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"><figcaption>{html.escape(alt)} ' \
           f'(<a href="{path.name}">{path.name}</a>)</figcaption></figure>'


_CSS = """body{font-family:sans-serif;margin:2em;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:13px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
td:first-child,th:first-child{text-align:left}figure{margin:1em 0}img{max-width:100%;border:1px solid #ddd}
.note{color:#555;font-size:13px}"""


def profile(model, board: str, out_dir, *, sim: str = "auto", input_path: str | None = None,
            labels: str | None = None, reference: str | None = None, samples: int = 4, timeout: float = 600,
            options=None) -> dict:
    """Run ``model`` on ``board`` and write the report into ``out_dir``; returns its data (also
    written as profile.json)."""
    from ..boards import load_board
    from ..codegen import generate_project
    from ..io import from_device, to_device
    from ..ir import interpreter
    from ..regress.measure import Job, load_job_inputs, sha256_file
    from ..regress.schema import CompileOptions

    model = Path(model)
    if not model.is_file():
        raise McucError("no such model file", where=str(model))
    b = load_board(board)
    sha = sha256_file(model)
    g = (options or CompileOptions()).compile(model)
    feeds, source = load_job_inputs(Job(str(model), board, inputs=input_path, samples=samples), g, sha)
    n = int(next(iter(feeds.values())).shape[0])
    want = interpreter.run(g, feeds)
    rep = None
    with tempfile.TemporaryDirectory(prefix="mcuc-profile-") as tmp:
        d = Path(tmp)
        man = generate_project(g, b, d, model_name=model.stem, model_sha256=sha, force=True)
        if b.simulators.host:
            from ..sim.host import run_host_detailed

            outs = run_host_detailed(d, to_device(g, feeds), timeout=timeout).outputs
            elf = d / man["target"]
        else:
            from ..sim.runner import report, run_firmware

            run = run_firmware(d, to_device(g, feeds), sim=sim, timeout=timeout)
            outs, rep = run.outputs, report(run, man)
            elf = d / man["target"]
        sizes = elf_sizes(elf)
    got = from_device(g, outs)
    exact = all(np.array_equal(got[v.name], want[v.name]) for v in g.outputs)
    first = g.outputs[0].name
    acc = _accuracy(got, first, labels, reference, n)
    if labels:
        ref_pred = np.asarray(want[first]).reshape(n, -1).argmax(1)
        acc["labels"]["interpreter_top1"] = float(np.mean(ref_pred == np.load(labels).reshape(-1)))

    timed = [li for li in man["layers"] if li.get("function")]
    layers = rep["layers"] if rep else [{"name": li["layer"], "op": li["op"], "macs": li["macs"], "instructions": None,
                                         "cycles": None} for li in timed]
    floor = peak(b)
    weights = {li["layer"]: sum(a["bytes"] for a in li.get("arrays", [])) for li in man["layers"] if li.get("arrays")}
    kernels = {}
    for li in timed:
        f = li["function"]
        if f in sizes["functions"] and f not in kernels:
            kernels[f] = sizes["functions"][f]
    other = max(0, sizes["text_bytes"] - sum(kernels.values()))
    mem = man["memory"]

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    has_cycles = rep is not None and any(li["cycles"] for li in layers)
    made = []
    if has_cycles:
        chart_cycles(layers, out_dir / "cycles.png",
                     f"{model.stem} on {b.name}: estimated cycles per layer ({rep['simulator']}, cycle model "
                     f"{rep['cycle_model'].split('(')[1].split(',')[0] if '(' in rep['cycle_model'] else ''})")
        chart_cycles_per_mac(layers, floor, out_dir / "cycles_per_mac.png")
        made += ["cycles", "cycles_per_mac"]
    chart_arena(mem["buffers"], mem["arena_bytes"], [li["layer"] for li in man["layers"]], out_dir / "arena.png")
    chart_flash(weights, kernels, other, out_dir / "flash.png")
    made += ["arena", "flash"]

    data = {
        "mcuc_version": __version__, "model": model.stem, "model_sha256": sha, "board": b.qualified,
        "simulator": rep["simulator"] if rep else "host", "toolchain": rep["toolchain"] if rep else man.get("toolchain"),
        "cycle_model": rep["cycle_model"] if rep else None, "inputs": source, "samples": n,
        "interpreter_exact": exact, "instructions": rep["instructions"] if rep else None,
        "cycles": rep["cycles"] if rep else None, "macs": sum(li["macs"] for li in man["layers"]),
        "arena_bytes": mem["arena_bytes"], "arena_lower_bound": mem["lower_bound"], "buffers": mem["buffers"],
        "flash_bytes": rep["flash_bytes"] if rep else man["flash"]["total_bytes"], "weights_per_layer": weights,
        "code_per_kernel": kernels, "code_other_bytes": other, "layers": layers, "core_floor": floor,
        "accuracy": acc, "charts": [f"{c}.png" for c in made],
    }
    (out_dir / "profile.json").write_text(json.dumps(data, indent=1) + "\n")
    _write_html(out_dir, data, made)
    return data


def _write_html(out_dir: Path, d: dict, made: list[str]) -> None:
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>mcuc profile: {html.escape(d['model'])} on "
             f"{html.escape(d['board'])}</title><style>{_CSS}</style></head><body>",
             f"<h1>{html.escape(d['model'])} on {html.escape(d['board'])}</h1>",
             f"<p class='note'>mcuc {html.escape(d['mcuc_version'])}; model sha256 {d['model_sha256'][:16]}; "
             f"{d['samples']} sample(s) ({html.escape(d['inputs'])}); run in {html.escape(str(d['simulator']))}, "
             f"built with {html.escape(str(d['toolchain']))}. Outputs "
             f"{'are bit-exact with' if d['interpreter_exact'] else '<b>differ from</b>'} the reference interpreter.</p>"]
    summary = [["MACs per inference", f"{d['macs']:,}"],
               ["arena", f"{d['arena_bytes']:,} B (liveness lower bound {d['arena_lower_bound']:,} B)"],
               ["flash", f"{d['flash_bytes']:,} B" if d["flash_bytes"] is not None else "not measured"]]
    if d["cycles"]:
        summary[0:0] = [["instructions per inference", f"{d['instructions']:,}"],
                        ["cycles per inference (estimated)", f"{d['cycles']:,}"],
                        ["cycles/MAC (estimated)", f"{d['cycles'] / d['macs']:.2f}" if d["macs"] else "-"]]
    parts.append(_table(["", "value"], summary))
    if d["cycles"]:
        parts.append(f"<p class='note'>Cycles: {html.escape(d['cycle_model'])}; not a silicon measurement.</p>")
    else:
        parts.append("<p class='note'>No cycle figures: this board runs natively, without a cycle model.</p>")
    titles = {"cycles": "Estimated cycles per layer", "cycles_per_mac": "Cycles per MAC against the core's floor",
              "arena": "Arena timeline", "flash": "Flash breakdown"}
    for c in CHARTS:
        if c in made:
            parts.append(f"<h2>{titles[c]}</h2>")
            parts.append(_img(out_dir / f"{c}.png", titles[c]))
            if c == "cycles_per_mac" and d["core_floor"]:
                fl = d["core_floor"]
                parts.append(f"<p class='note'>Floor: {fl['cycles_per_mac']} cycles/MAC with {html.escape(fl['instruction'])}"
                             f" ({html.escape(fl['source'])}).</p>")
    rows = [[li["name"], li["op"], f"{li['macs']:,}", f"{li['instructions']:,}" if li["instructions"] is not None else "-",
             f"{li['cycles']:,}" if li["cycles"] else "-",
             f"{li['cycles'] / li['macs']:.2f}" if li["cycles"] and li["macs"] else "-",
             f"{d['weights_per_layer'].get(li['name'], 0):,}"] for li in d["layers"]]
    parts.append("<h2>Layers</h2>" + _table(["layer", "op", "MACs", "instructions", "cycles (est.)", "cyc/MAC",
                                             "weights B"], rows))
    parts.append("<h2>Arena buffers</h2>" + _table(
        ["tensor", "kind", "offset", "bytes", "first layer", "last layer"],
        [[b["name"], b["kind"], b["offset"], b["bytes"], b["first_layer"], b["last_layer"]] for b in d["buffers"]]))
    acc = d["accuracy"]
    if acc:
        rows = []
        if "labels" in acc:
            a = acc["labels"]
            rows.append(["top-1 against labels", f"{a['top1'] * 100:.2f}% ({a['correct']} of {a['samples']}); "
                                                 f"reference interpreter {a['interpreter_top1'] * 100:.2f}%"])
        if "reference" in acc:
            a = acc["reference"]
            rows.append(["against the reference outputs", f"{a['equal'] * 100:.2f}% of {a['elements']} elements equal, "
                         f"max |diff| {a['max_abs_diff']:.6g}, argmax agrees on {a['argmax_agree'] * 100:.2f}%"])
        parts.append("<h2>Accuracy</h2>" + _table(["check", "result"], rows))
    parts.append("</body></html>\n")
    tmp = out_dir / ".index.html.tmp"
    tmp.write_text("\n".join(parts))
    os.replace(tmp, out_dir / "index.html")
