"""The ``mcuc`` command line (error handling shared by every command: compiler/cliutil.py)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import click
import numpy as np

from . import __version__
from .cliutil import compile_options, guarded, parse_shapes
from .errors import McucError


def _lower(model, input_shape, rounding, scale_policy, dump_after):
    from .pipeline import compile_model

    return compile_model(model, input_shapes=parse_shapes(input_shape), convention=rounding,
                         scale_policy=scale_policy, dump_after=dump_after,
                         dump=lambda s: click.echo(s, err=True))


def _report_pow2(model, input_shape, rounding, feeds, g_pow2):
    """Outputs of the exact and the pow2-rounded model on the same inputs, side by side."""
    from .ir import interpreter

    g_exact = _lower(model, input_shape, rounding, "exact", ())
    a = interpreter.run(g_exact, feeds)
    b = interpreter.run(g_pow2, feeds)
    for v in g_exact.outputs:
        x, y = a[v.name].astype(np.float64), b[v.name].astype(np.float64)
        diff = np.abs(x - y)
        click.echo(f"pow2 scales: output {v.name}: {np.mean(diff > 0) * 100:.2f}% of elements changed, "
                   f"max change {diff.max():.6g}", err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mcuc")
def main():
    """mcuc: compile quantized ONNX models to C for microcontrollers."""


@main.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--input", "-i", "input_path", required=True, type=click.Path(dir_okay=False),
              help="X: .npy with N samples stacked on axis 0 (or .npz keyed by input name).")
@click.option("--output", "-o", "output_path", required=True, type=click.Path(dir_okay=False),
              help="Y: .npy (one output) or .npz keyed by output name.")
@compile_options
@guarded
def interpret(model, input_path, output_path, input_shape, rounding, scale_policy, dump_after):
    """Run MODEL in the reference interpreter (the bit-exact specification)."""
    from .io import load_inputs, save_outputs
    from .ir import interpreter

    g = _lower(model, input_shape, rounding, scale_policy, dump_after)
    feeds = load_inputs(input_path, g)
    outs = interpreter.run(g, feeds)
    if scale_policy == "pow2":
        _report_pow2(model, input_shape, rounding, feeds, g)
    save_outputs(output_path, outs, g)
    n = next(iter(feeds.values())).shape[0]
    click.echo(f"interpreted {n} sample(s) -> {output_path}", err=True)


def _model_sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@main.command("compile")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--board", "-b", default="host", show_default=True, help="Target board (see `mcuc boards`).")
@click.option("--output-dir", "-o", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Directory for the generated C project.")
@click.option("--force", is_flag=True, help="Overwrite files mcuc generated before in DIR.")
@compile_options
@guarded
def compile_cmd(model, board, out_dir, force, input_shape, rounding, scale_policy, dump_after):
    """Compile MODEL to a self-contained C project for BOARD."""
    from .boards import load_board
    from .codegen import generate_project

    b = load_board(board)
    g = _lower(model, input_shape, rounding, scale_policy, dump_after)
    man = generate_project(g, b, Path(out_dir), model_name=Path(model).stem, model_sha256=_model_sha256(model), force=force)
    mem, flash = man["memory"], man["flash"]
    click.echo(f"wrote {out_dir}: arena {mem['arena_bytes']} B (liveness lower bound {mem['lower_bound']} B), "
               f"flash {flash['total_bytes']} B ({flash['weights_bytes']} B weights + {flash['code_bytes']} B code)")


@main.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--board", "-b", default="host", show_default=True, help="Target board (see `mcuc boards`).")
@click.option("--input", "-i", "input_path", required=True, type=click.Path(dir_okay=False),
              help="X: .npy with N samples stacked on axis 0 (or .npz keyed by input name).")
@click.option("--output", "-o", "output_path", type=click.Path(dir_okay=False),
              help="Y: .npy (one output) or .npz keyed by output name.")
@click.option("--work-dir", type=click.Path(file_okay=False), help="Keep the generated project here (default: a temporary directory).")
@click.option("--sim", type=click.Choice(["auto", "renode", "qemu", "unicorn"]), default="auto", show_default=True,
              help="Simulator for firmware boards: auto picks renode if installed, else qemu if installed and the "
                   "board has a QEMU machine, else unicorn.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with instructions, estimated cycles and per-layer figures.")
@click.option("--timeout", type=float, default=600, show_default=True, help="Seconds before a hung firmware is stopped.")
@compile_options
@guarded
def run(model, board, input_path, output_path, work_dir, sim, as_json, timeout, input_shape, rounding, scale_policy, dump_after):
    """Compile MODEL, build it for BOARD and run it on the inputs (natively or in a simulator)."""
    import json
    import tempfile

    from .boards import load_board
    from .codegen import generate_project
    from .io import from_device, load_inputs, save_outputs, to_device
    from .sim import run_host

    b = load_board(board)
    g = _lower(model, input_shape, rounding, scale_policy, dump_after)
    feeds = load_inputs(input_path, g)
    n = next(iter(feeds.values())).shape[0]
    with tempfile.TemporaryDirectory(prefix="mcuc-run-") as tmp:
        d = Path(work_dir) if work_dir else Path(tmp)
        man = generate_project(g, b, d, model_name=Path(model).stem, model_sha256=_model_sha256(model), force=True)
        if b.simulators.host:
            outs = from_device(g, run_host(d, to_device(g, feeds)))
            rep = None
        else:
            from .sim.runner import report, run_firmware

            r = run_firmware(d, to_device(g, feeds), sim=sim, timeout=timeout)
            outs = from_device(g, r.outputs)
            rep = report(r, man)
    if output_path:
        save_outputs(output_path, outs, g)
    if rep is not None and as_json:
        click.echo(json.dumps(rep))
    elif rep is not None:
        _print_run_table(rep)
    elif as_json:
        click.echo(json.dumps({"board": b.qualified, "simulator": "host", "samples": n}))
    click.echo(f"ran {n} sample(s) on {b.name}" + (f" in {rep['simulator']}" if rep else "")
               + (f" -> {output_path}" if output_path else ""), err=True)


def _print_run_table(rep: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"{rep['board']} in {rep['simulator']} ({rep['simulator_choice']}); built with {rep['toolchain']}")
    t.add_column("layer")
    t.add_column("op")
    t.add_column("MACs", justify="right")
    t.add_column("instructions", justify="right")
    t.add_column("cycles (est.)", justify="right")
    t.add_column("cyc/MAC", justify="right")
    for li in rep["layers"]:
        t.add_row(li["name"], li["op"], f"{li['macs']:,}", f"{li['instructions']:,}", f"{li['cycles']:,}",
                  f"{li['cycles'] / li['macs']:.2f}" if li["macs"] and li["cycles"] else "")
    t.add_row("total per inference", "", f"{rep['macs']:,}", f"{rep['instructions']:,}", f"{rep['cycles']:,}",
              f"{rep['cycles_per_mac']:.2f}" if rep["cycles_per_mac"] else "", style="bold")
    con = Console(stderr=False)
    con.print(t)
    con.print(f"cycles: {rep['cycle_model']}; {rep['samples']} sample(s) in {rep['sessions']} session(s), "
              f"{rep['seconds']:.2f} s; arena {rep['arena_bytes']:,} B, flash {rep['flash_bytes']:,} B")


@main.command("flash")
@click.argument("project_dir", type=click.Path(file_okay=False, exists=True))
@click.option("--board", "-b", default=None, help="Board to program (default: the project's board).")
@click.option("--dry-run", is_flag=True, help="Print the command instead of running it.")
@guarded
def flash_cmd(project_dir, board, dry_run):
    """Program a generated firmware project onto a real board with the board's flash tool."""
    import json
    import shlex

    from .boards import load_board
    from .sim.flash import flash

    try:
        man = json.loads((Path(project_dir) / "manifest.json").read_text())
    except (OSError, ValueError) as e:
        raise McucError(f"not a generated project: {e}", where=project_dir) from None
    b = load_board(board or man["board"])
    if b.qualified != man["board"]:
        raise McucError(f"the project was generated for {man['board']}, not {b.qualified}")
    cmd = flash(b, project_dir, man, dry_run=dry_run)
    click.echo(shlex.join(cmd))


@main.command()
@guarded
def boards():
    """List the boards mcuc can compile for."""
    from .boards import list_boards

    from .boards import load_board

    for name in list_boards():
        b = load_board(name)
        click.echo(f"{name:24s} {b.description}")


from .quantize.cli import quantize as _quantize_cmd  # noqa: E402  (a subcommand defined with its package)
from .quantize.cli import sweep as _sweep_cmd  # noqa: E402

main.add_command(_quantize_cmd)
main.add_command(_sweep_cmd)

from .regress.cli import export_robot_cmd as _export_robot_cmd  # noqa: E402
from .regress.cli import regress as _regress_cmd  # noqa: E402

main.add_command(_regress_cmd)
main.add_command(_export_robot_cmd)

from .profile.cli import profile as _profile_cmd  # noqa: E402

main.add_command(_profile_cmd)


if __name__ == "__main__":
    main()
