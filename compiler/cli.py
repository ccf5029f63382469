"""The ``mcuc`` command line.

Every user error is a McucError: printed as one line ``mcuc: error: ...`` with exit status 2 and
no traceback. Anything else is a compiler bug: one line asking for a report (status 3), with
the traceback only when MCUC_DEBUG=1.
"""

from __future__ import annotations

import functools
import hashlib
import os
import sys
import traceback
from pathlib import Path

import click
import numpy as np

from . import __version__
from .errors import McucError


def _fail(msg: str, code: int) -> None:
    click.echo(f"mcuc: error: {msg}", err=True)
    sys.exit(code)


def guarded(fn):
    @functools.wraps(fn)
    def wrapper(*a, **kw):
        try:
            return fn(*a, **kw)
        except McucError as e:
            _fail(str(e).splitlines()[0] if str(e) else type(e).__name__, 2)
        except KeyboardInterrupt:
            _fail("interrupted", 130)
        except Exception as e:  # a bug in mcuc, not in the user's input
            if os.environ.get("MCUC_DEBUG"):
                traceback.print_exc()
            _fail(f"internal error ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
                  "this is a bug in mcuc, please report it (MCUC_DEBUG=1 shows the traceback)", 3)

    return wrapper


def _parse_shapes(specs) -> dict[str, list[int]]:
    out = {}
    for s in specs:
        if "=" not in s:
            raise McucError(f"--input-shape {s!r}: expected NAME=D1,D2,...")
        name, dims = s.split("=", 1)
        try:
            out[name] = [int(d) for d in dims.split(",")]
        except ValueError:
            raise McucError(f"--input-shape {s!r}: dimensions must be integers") from None
        if any(d <= 0 for d in out[name]):
            raise McucError(f"--input-shape {s!r}: dimensions must be positive")
    return out


def compile_options(fn):
    fn = click.option("--input-shape", "input_shape", multiple=True, metavar="NAME=D1,D2,...",
                      help="Fix the shape of an input with dynamic dimensions (repeatable).")(fn)
    fn = click.option("--rounding", type=click.Choice(["auto", "onnx", "tflite"]), default="auto", show_default=True,
                      help="Whose integer arithmetic to reproduce: ONNX (round half to even) or TFLite Micro; "
                           "auto picks tflite for models converted by tf2onnx.")(fn)
    fn = click.option("--scale-policy", type=click.Choice(["exact", "pow2"]), default="exact", show_default=True,
                      help="exact: keep every scale (dyadic multipliers); pow2: round scales to powers of two "
                           "(shift-only requantization) and report how far outputs move.")(fn)
    fn = click.option("--dump-after", multiple=True, metavar="PASS|all",
                      help="Print the IR after a pass (or after every pass) to stderr.")(fn)
    return fn


def _lower(model, input_shape, rounding, scale_policy, dump_after):
    from .pipeline import compile_model

    return compile_model(model, input_shapes=_parse_shapes(input_shape), convention=rounding,
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
@compile_options
@guarded
def run(model, board, input_path, output_path, work_dir, input_shape, rounding, scale_policy, dump_after):
    """Compile MODEL, build it for BOARD and run it on the inputs."""
    import tempfile

    from .boards import load_board
    from .codegen import generate_project
    from .io import from_device, load_inputs, save_outputs, to_device
    from .sim import run_host

    b = load_board(board)
    if not b.simulators.host:
        raise McucError(f"board {b.name!r} runs only in a simulator, and simulators are not wired to `mcuc run` yet")
    g = _lower(model, input_shape, rounding, scale_policy, dump_after)
    feeds = load_inputs(input_path, g)
    with tempfile.TemporaryDirectory(prefix="mcuc-run-") as tmp:
        d = Path(work_dir) if work_dir else Path(tmp)
        generate_project(g, b, d, model_name=Path(model).stem, model_sha256=_model_sha256(model), force=True)
        outs = from_device(g, run_host(d, to_device(g, feeds)))
    if output_path:
        save_outputs(output_path, outs, g)
    n = next(iter(feeds.values())).shape[0]
    click.echo(f"ran {n} sample(s) on {b.name}" + (f" -> {output_path}" if output_path else ""), err=True)


@main.command()
@guarded
def boards():
    """List the boards mcuc can compile for."""
    from .boards import list_boards

    from .boards import load_board

    for name in list_boards():
        b = load_board(name)
        click.echo(f"{name:24s} {b.description}")


if __name__ == "__main__":
    main()
