"""The generated project: C sources, headers, harness, Makefile and manifest in one directory.

``generate_project`` is the entry point. Every output byte is a function of the graph, the
board and mcuc itself, except the manifest's ``generated_at``.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import __version__, resources
from ..boards import Board, expand_env, load_board
from ..errors import McucError
from ..ir.analysis import macs as node_macs
from ..ir.graph import Graph, Value
from . import cdata, memory, templates, toolchain
from .lower import Layer, Program, lower
from .names import model_ident

RUNTIME_HEADERS = ("mcuc_round.h", "mcuc_pack.h", "mcuc_port.h")
HARNESS = "mcuc_harness.c"
PORT = "mcuc_port.c"
IO_HEADER = "mcuc_model_io.h"
MAKE_FLAGS = ["-I.", "-fno-strict-aliasing"]
_FN = "mcuc_kernel_under_comparison"


@dataclass
class Rendered:
    files: dict[str, bytes]
    manifest: dict


def _planner_input(prog: Program):
    """The program as the memory planner sees it."""
    values: dict[int, memory.PValue] = {}

    def add(v: Value, kind: str = "temp", index: int = 0):
        if v.id not in values:
            values[v.id] = memory.PValue(v.id, v.type.nbytes, max(1, v.type.dtype.np.itemsize), kind, index)

    for t in prog.inputs:
        add(t.value, "input", t.index)
    consts = {vid: i for i, vid in enumerate(prog.value_consts)}
    steps = []
    for layer in prog.layers:
        ins = []
        for a in layer.args:
            if a.kind == "in":
                add(a.ref)
                ins.append(a.ref.id)
        for v in layer.node.inputs:
            if v is not None and v.is_const and v.id in prog.value_consts:
                add(v, "const", consts[v.id])
        # Alias steps read their (possibly constant) input through its storage.
        if layer.alias and layer.node.inputs[0].is_const:
            ins = [layer.node.inputs[0].id]
        add(layer.writes)
        steps.append(memory.PStep(ins, [layer.writes.id], layer.scratch, layer.alias, layer.inplace))
    for t in prog.outputs:
        v = t.value
        if v.is_const:
            add(v, "const", consts[v.id])
        else:
            add(v)
    return values, steps


def _ptr(prog: Program, plan: memory.MemoryPlan, v: Value, ctype: str, const_consts: dict) -> str:
    loc = plan.locations[v.id]
    if loc.kind == "arena":
        return f"({ctype} *)(arena + {loc.offset})"
    if loc.kind == "input":
        return f"in_{prog.inputs[loc.index].cname}"
    if loc.kind == "output":
        return f"out_{prog.outputs[loc.index].cname}"
    return const_consts[loc.index].symbol


def _arg_expr(prog, plan, layer: Layer, a, const_list, scratch_off) -> str:
    if a.kind in ("in", "out"):
        return _ptr(prog, plan, a.ref, a.ctype, const_list)
    if a.kind == "array":
        return a.ref.symbol
    if a.kind == "scratch":
        return f"(void *)(arena + {scratch_off})"
    raise AssertionError(a.kind)


def _io_desc(t, role: str, prefix: str) -> dict:
    q = t.quant
    if q is not None and q.per_channel:
        # An output dequantized per channel (e.g. a final int32 accumulator): arrays along QUANT_AXIS.
        scale = "{" + ", ".join(cdata.c_float(float(s)) for s in q.scale) + "}"
        zp = "{" + ", ".join(str(int(z)) for z in q.zero_point) + "}"
        axis = int(q.axis)
    else:
        scale = cdata.c_float(float(q.scalar_scale())) if q is not None else "1.0e+00f"
        zp = f"({int(q.scalar_zp()) if q is not None else 0})"
        axis = -1
    macro = f"{prefix}_{'IN' if role == 'input' else 'OUT'}_{t.cname.upper()}"
    return {
        "role": role.capitalize(), "index": t.index, "param": ("in_" if role == "input" else "out_") + t.cname,
        "macro": macro, "rank": len(t.shape), "shape": list(t.shape) or [1], "size": int(t.value.type.size),
        "bytes": int(t.value.type.size * t.dtype.np.itemsize), "ctype": t.dtype.ctype, "scale": scale,
        "zero_point": zp, "quant_axis": axis,
    }


def render_project(graph: Graph, board: Board, *, model_name: str, model_sha256: str) -> Rendered:
    """All files of the project as bytes, and the manifest without its timestamp."""
    model = model_ident(model_name)
    families = board.families
    prog = lower(graph, model, families=families, flash_bytes=sum(m.size for m in board.memory("flash")) or None)
    if not prog.outputs:
        raise McucError("the graph has no outputs")
    values, steps = _planner_input(prog)
    plan = memory.plan(values, steps, [t.value.id for t in prog.outputs])
    memory.check(plan.buffers)

    const_list = list(prog.value_consts.values())
    kernels_c = f"{model}_kernels.c"
    kernels_h = f"{model}_kernels.h"
    files: dict[str, bytes] = {}
    used_templates: dict[str, str] = {}
    macros = templates.resolve("_macros.j2", families)
    kernels, prototypes, calls, layer_info = [], [], [], []
    # Layers whose specialized kernel is the same C (same shapes and baked constants; arrays
    # are arguments) share one function: specialization should not cost flash twice.
    seen: dict[tuple[str, str], str] = {}
    for i, layer in enumerate(prog.layers):
        info = {"index": i, "layer": layer.cname, "op": layer.node.op, "function": None, "template": None,
                "scratch_bytes": layer.scratch, "inplace": i in plan.inplace, "alias": i in plan.aliased,
                "macs": node_macs(layer.node),
                # Constant arrays the layer's kernel reads: the per-layer flash breakdown of reports.
                "arrays": [{"symbol": a.ref.symbol, "bytes": a.ref.nbytes} for a in layer.args if a.kind == "array"]}
        call = {"index": i, "layer": layer.cname, "op": layer.node.op, "func": None, "args": [], "note": ""}
        if i in plan.aliased:
            info["template"] = "alias"
            call["note"] = "shares its input's storage, no code"
        else:
            path, canonical = templates.render(layer.template, families, **dict(layer.params, fn=_FN, layer=_FN, macros=macros))
            func = seen.get((path, canonical))
            if func is None:
                func = layer.func
                seen[(path, canonical)] = func
                _, text = templates.render(layer.template, families, **dict(layer.params, fn=func, macros=macros))
                kernels.append(text.strip("\n") + "\n")
                prototypes.append(f"{func}({', '.join(layer.sig)})")
            else:
                call["note"] = "same kernel as an earlier layer"
            used_templates[layer.template] = path
            call["func"] = func
            call["args"] = [_arg_expr(prog, plan, layer, a, const_list, plan.scratch.get(i)) for a in layer.args]
            if i in plan.inplace:
                call["note"] = ", ".join(x for x in (call["note"], "in place") if x)
            info.update(function=func, template=path)
        calls.append(call)
        layer_info.append(info)

    arrays = [cdata.c_array(a.symbol, a.ctype, a.data) for a in prog.arrays]
    weights_bytes = sum(a.nbytes for a in prog.arrays)

    params = [f"const {t.dtype.ctype} *in_{t.cname}" for t in prog.inputs] + \
             [f"{t.dtype.ctype} *out_{t.cname}" for t in prog.outputs]
    param_names = [f"in_{t.cname}" for t in prog.inputs] + [f"out_{t.cname}" for t in prog.outputs]
    copies = []
    for j, _ in plan.copies:
        t = prog.outputs[j]
        copies.append({"index": j, "dst": f"out_{t.cname}",
                       "src": _ptr(prog, plan, t.value, t.dtype.ctype, const_list),
                       "bytes": int(t.value.type.size * t.dtype.np.itemsize)})
    prefix = model.upper()
    io = [_io_desc(t, "input", prefix) for t in prog.inputs] + [_io_desc(t, "output", prefix) for t in prog.outputs]
    common = dict(version=__version__, board=board.qualified, model=model, MODEL=prefix)

    def render(name: str, **kw) -> str:
        path, text = templates.render(name, families, **common, **kw)
        used_templates[name] = path
        return text

    files[f"{model}.h"] = render(
        "model.h.j2", guard=f"{prefix}_H", inputs=io[:len(prog.inputs)], outputs=io[len(prog.inputs):],
        params=params, arena_bytes=plan.arena_bytes).encode()
    files[f"{model}.c"] = render(
        "model.c.j2", kernels_header=kernels_h, arena_bytes=plan.arena_bytes, arena_words=(plan.arena_bytes + 3) // 4,
        lower_bound=plan.lower_bound, arrays=arrays, params=params, param_names=param_names, calls=calls,
        copies=copies, n_layer_slots=max(1, len(prog.layers)), timed=any(c["func"] for c in calls)).encode()
    files[kernels_h] = render("kernels.h.j2", header=kernels_h, guard=f"{prefix}_KERNELS_H", prototypes=prototypes).encode()
    files[kernels_c] = render("kernels.c.j2", source=kernels_c, header=kernels_h, kernels=kernels).encode()

    def offsets(ts):
        offs, bytes_, cur = [], [], 0
        for t in ts:
            offs.append(cur)
            n = int(t.value.type.size * t.dtype.np.itemsize)
            bytes_.append(n)
            cur += memory.align(n)
        return offs, bytes_, max(cur, 4)

    in_off, in_bytes, in_total = offsets(prog.inputs)
    out_off, out_bytes, out_total = offsets(prog.outputs)
    invoke = [f"(const {t.dtype.ctype} *)(in + {o})" for t, o in zip(prog.inputs, in_off)] + \
             [f"({t.dtype.ctype} *)(out + {o})" for t, o in zip(prog.outputs, out_off)]
    files[IO_HEADER] = render(
        "model_io.h.j2", inputs=prog.inputs, outputs=prog.outputs, in_buf_bytes=in_total, out_buf_bytes=out_total,
        in_off=in_off or [0], in_bytes=in_bytes or [0], out_off=out_off, out_bytes=out_bytes, invoke_args=invoke,
        layer_names=[f'"{c["layer"]}"' for c in calls]).encode()

    rt = resources.runtime_dir()
    files[HARNESS] = (rt / "harness" / "main.c").read_bytes()
    files[PORT] = _port_source(families).read_bytes()
    # Runtime headers a family's kernels or port layer include beyond the common ones (e.g.
    # mcuc_xpulp.h, mcuc_port_blob.h).
    included = re.findall(r'#include "(mcuc_[a-z0-9_]+\.h)"', (files[kernels_c] + files[PORT]).decode())
    runtime_headers = RUNTIME_HEADERS + tuple(sorted(
        {h for h in included if h not in RUNTIME_HEADERS and (rt / "include" / h).is_file()}))
    for h in runtime_headers:
        files[h] = (rt / "include" / h).read_bytes()

    target = board.toolchain.target.format(model=model)
    sources = [f"{model}.c", kernels_c, HARNESS, PORT]
    headers = [f"{model}.h", kernels_h, IO_HEADER, *runtime_headers]
    platform = _platform_files(board, dict(common, target=target), used_templates, "platform")
    if board.simulators.renode is not None and board.simulators.renode.uart:
        # Renode scripts are data for a simulator, not part of the firmware build.
        files.update(_platform_files(board, dict(common, target=target), used_templates, "renode"))
    files.update(platform)
    sources += [n for n in platform if n.endswith(".c")]
    headers += [n for n in platform if n.endswith(".h")]
    scripts = [n for n in platform if n.endswith(".ld")]
    files["Makefile"] = render(
        "Makefile.j2", target=target, cc=_default_cc(board), cflags=" ".join(board.toolchain.cflags),
        ldflags=" ".join(board.toolchain.ldflags), sources=sources, headers=headers,
        linker_script=scripts[0] if scripts else "").encode()

    model_sources = [f"{model}.c", kernels_c]
    runtime_sources = [n for n in sources if n not in model_sources] if platform else []
    code = measure_code(files, board, model_sources + runtime_sources)
    runtime = None
    if platform:
        runtime = sum(code["objects"].pop(n, 0) for n in runtime_sources) if code["text_bytes"] is not None else None
        if runtime is not None:
            code["text_bytes"] -= runtime
    manifest = {
        "mcuc_version": __version__,
        "model": model,
        "model_sha256": model_sha256,
        "board": board.qualified,
        "families": list(families),
        "target": target,
        "inputs": [_io_manifest(t) for t in prog.inputs],
        "outputs": [_io_manifest(t) for t in prog.outputs],
        "layers": layer_info,
        "templates": dict(sorted(used_templates.items())),
        "memory": {**plan.report(), "buffers": _buffer_map(prog, plan)},
        "flash": {
            "weights_bytes": weights_bytes,
            "code_bytes": code["text_bytes"],
            "total_bytes": None if code["text_bytes"] is None else weights_bytes + code["text_bytes"],
            "code_measured": code,
        },
        "files": {name: hashlib.sha256(data).hexdigest() for name, data in sorted(files.items())},
    }
    if platform:
        manifest["flash"]["runtime_bytes"] = runtime
    manifest["toolchain"] = code.get("toolchain")
    fits = check_fits(board, manifest, in_total + out_total)
    if fits is not None:
        manifest["fits"] = fits
    return Rendered(files, manifest)


def _buffer_map(prog: Program, plan: memory.MemoryPlan) -> list[dict]:
    """The arena plan as data for reports (``mcuc profile``): each arena buffer's offset, size and
    lifetime in layer indices, named by the tensor that owns it (or ``scratch:<layer>``)."""
    names = {t.value.id: t.value.name for t in prog.inputs}
    for layer in prog.layers:
        names.setdefault(layer.writes.id, layer.writes.name)
        for v in layer.reads:
            names.setdefault(v.id, v.name)
    out = []
    for b in sorted(plan.buffers, key=lambda b: (b.start, b.offset, str(b.key))):
        kind, key = b.key
        name = f"scratch:{prog.layers[key].cname}" if kind == "scratch" else names.get(key, f"value{key}")
        out.append({"name": name, "kind": "scratch" if kind == "scratch" else "tensor", "offset": b.offset,
                    "bytes": b.size, "first_layer": b.start, "last_layer": b.end})
    return out


def _hex(v: int) -> str:
    return f"0x{v:08X}"


def _platform_files(board: Board, common: dict, used: dict, subdir: str) -> dict[str, bytes]:
    """Firmware files from ``templates/<family>/platform/`` (start-up, linker script, console
    driver) or ``.../renode/`` (Renode script, test suite, platform overlay). A more specific
    family's template replaces a generic one of the same name; the host families have none."""
    root = resources.templates_dir()
    names: list[str] = []
    for fam in board.families:
        d = root / fam / subdir
        if d.is_dir():
            names += sorted(p.name for p in d.glob("*.j2") if p.name not in names)
    if not names:
        return {}
    flash, ram = _main_memory(board, "flash"), _main_memory(board, "ram")
    if flash is None or ram is None or board.console is None:
        raise McucError(f"board {board.qualified!r}: firmware needs a flash and a ram memory and a console")
    con = board.console
    ren = board.simulators.renode
    ctx = dict(common,
               renode=None if ren is None else {"platform": ren.platform, "uart": ren.uart, "overlay": list(ren.overlay)},
               flash={"origin": _hex(flash.origin), "size": _hex(flash.size)},
               ram={"origin": _hex(ram.origin), "size": _hex(ram.size)},
               stack_bytes=board.stack_bytes,
               console={"device": con.device or con.kind, "base": _hex(con.base or 0), "baud": con.baud or 115200,
                        "clock_hz": con.clock_hz or board.clock_hz or 1,
                        "init": [{"addr": _hex(r.addr), "mask": _hex(r.clear), "bits": _hex(r.set)} for r in con.init]})
    out = {}
    for name in names:
        path, text = templates.render(f"{subdir}/{name}", list(board.families), **ctx)
        used[f"{subdir}/{name}"] = path
        out[name.removesuffix(".j2")] = text.encode()
    return out


def _main_memory(board: Board, kind: str):
    """The first memory of a kind: where the linker script puts code (flash) or data (ram)."""
    mems = board.memory(kind)
    return mems[0] if mems else None


def check_fits(board: Board, manifest: dict, io_bytes: int) -> dict | None:
    """Flash and RAM the firmware needs against the board's memories; McucError with the numbers
    when the model does not fit. None for boards without declared memories (the host)."""
    flash, ram = _main_memory(board, "flash"), _main_memory(board, "ram")
    if flash is None or ram is None:
        return None
    fl = manifest["flash"]
    code = fl["code_bytes"] or 0
    runtime = fl.get("runtime_bytes") or 0
    flash_need = fl["weights_bytes"] + code + runtime
    arena = manifest["memory"]["arena_bytes"]
    layer_slots = 8 * max(1, len(manifest["layers"]))
    ram_need = arena + io_bytes + layer_slots + board.stack_bytes
    fits = {"flash_bytes": flash_need, "flash_available": flash.size, "ram_bytes": ram_need,
            "ram_available": ram.size, "estimated_code": fl["code_bytes"] is None}
    if flash_need > flash.size:
        raise McucError(f"the model does not fit {board.qualified}'s flash: it needs {flash_need:,} B (weights "
                        f"{fl['weights_bytes']:,} + code {code:,} + runtime {runtime:,}), the board has {flash.size:,} B")
    if ram_need > ram.size:
        raise McucError(f"the model does not fit {board.qualified}'s RAM: it needs {ram_need:,} B (arena {arena:,} + "
                        f"I/O buffers {io_bytes:,} + profile {layer_slots:,} + stack {board.stack_bytes:,}), "
                        f"the board has {ram.size:,} B")
    return fits


def _io_manifest(t) -> dict:
    q = t.quant
    return {
        "name": t.cname,
        "graph_name": t.raw_name,
        "index": t.index,
        "dtype": t.dtype.name.lower(),
        "shape": list(t.shape),
        "scale": None if q is None else [float(np.float32(s)) for s in q.scale] if q.per_channel else float(np.float32(q.scalar_scale())),
        "zero_point": None if q is None else [int(z) for z in q.zero_point] if q.per_channel else int(q.scalar_zp()),
        "quant_axis": None if q is None or not q.per_channel else int(q.axis),
    }


def _port_source(families) -> Path:
    for fam in families:
        p = resources.runtime_dir() / "port" / fam / "mcuc_port.c"
        if p.is_file():
            return p
    raise McucError(f"no port layer (runtime_c/port/<family>/mcuc_port.c) for families {list(families)}")


def _default_cc(board: Board) -> str:
    """The board's compiler with ${VAR:-default} resolved to its default, so that the Makefile
    does not depend on the environment it was generated in (make reads $CC itself)."""
    return expand_env(board.toolchain.cc, env={}) or "cc"


def measure_code(files: dict[str, bytes], board: Board, sources: list[str]) -> dict:
    """Bytes of executable code (.text*) of ``sources`` built with the board's compiler and flags
    (or the toolchain that replaces it, see toolchain.py)."""
    try:
        tc = toolchain.select(board)
    except McucError as e:
        cc = board.cc() or "cc"
        return {"compiler": os.path.basename(cc.split()[0]) if cc.split() else cc,
                "flags": list(board.toolchain.cflags) + MAKE_FLAGS, "objects": {}, "text_bytes": None,
                "error": str(e), "toolchain": None}
    flags = list(tc.cflags) + MAKE_FLAGS
    result = {"compiler": os.path.basename(tc.cc[0]) if tc.kind == "board" else "zig cc", "flags": flags,
              "objects": {}, "text_bytes": None, "error": None, "toolchain": tc.description}
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile
    from elftools.elf.constants import SH_FLAGS

    with tempfile.TemporaryDirectory(prefix="mcuc-size-") as tmp:
        for name, data in files.items():
            if name.endswith((".c", ".h")):
                (Path(tmp) / name).write_bytes(data)
        total = 0
        # One compiler run for all sources: a process per file costs more than the compiling.
        r = subprocess.run([*tc.cc, *flags, "-c", *sources], cwd=tmp, capture_output=True, text=True)
        if r.returncode != 0:
            result["error"] = _first_error(r.stderr)
            return result
        for src in sources:
            obj = Path(tmp) / (Path(src).stem + ".o")
            try:
                with open(obj, "rb") as f:
                    elf = ELFFile(f)
                    n = sum(s["sh_size"] for s in elf.iter_sections()
                            if s.name.startswith(".text") and s["sh_flags"] & SH_FLAGS.SHF_EXECINSTR)
            except (OSError, ELFError) as e:
                result["error"] = f"{src}: not an ELF object ({e})"
                return result
            result["objects"][src] = int(n)
            total += int(n)
        result["text_bytes"] = total
    return result


def _first_error(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    for ln in lines:
        if "error" in ln.lower():
            return ln
    return lines[0] if lines else "failed without a message"


def _safe_target(out_dir: Path, name: str) -> Path:
    if "/" in name or "\\" in name or name in ("", ".", "..") or name.startswith("."):
        raise McucError(f"refusing to write {name!r}: not a plain file name")
    root = out_dir.resolve()
    p = (root / name).resolve()
    if p.parent != root:
        raise McucError(f"refusing to write {name!r}: it resolves outside {out_dir}")
    return p


def generate_project(graph: Graph, board: Board | str, out_dir, *, model_name: str, model_sha256: str,
                     force: bool = False) -> dict:
    """Write the C project for ``graph`` on ``board`` into ``out_dir``; returns the manifest.

    Existing files are only replaced with ``force=True``; nothing is written if any would be
    replaced without it.
    """
    if isinstance(board, str):
        board = load_board(board)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise McucError(f"output path {out_dir} exists and is not a directory")
    rendered = render_project(graph, board, model_name=model_name, model_sha256=model_sha256)
    manifest = dict(rendered.manifest)
    manifest["generated_at"] = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()
    files = dict(rendered.files)
    files["manifest.json"] = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()

    out_dir.mkdir(parents=True, exist_ok=True)
    targets = {name: _safe_target(out_dir, name) for name in files}
    if not force:
        clash = next((p for p in targets.values() if p.exists()), None)
        if clash is not None:
            raise McucError(f"{clash} exists; use force to overwrite it")
    for name, p in targets.items():
        # Write beside the target and rename over it; "x" mode never follows a planted link.
        tmp = p.with_name(p.name + ".mcuc-tmp")
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        with open(tmp, "xb") as f:
            f.write(files[name])
        os.replace(tmp, p)
    return manifest
