"""``mcuc regress`` and ``mcuc export-robot`` (registered in compiler/cli.py)."""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import click

from ..cliutil import compile_options, guarded, parse_shapes
from ..errors import McucError


@click.command("regress")
@click.argument("baseline", type=click.Path(dir_okay=False))
@click.argument("models", nargs=-1, type=click.Path(dir_okay=False))
@click.option("--board", "-b", required=True, help="Target board (see `mcuc boards`).")
@click.option("--sim", type=click.Choice(["auto", "qemu", "unicorn", "renode"]), default="auto", show_default=True,
              help="Simulator for firmware boards (as for `mcuc run`).")
@click.option("--inputs", type=click.Path(), default=None,
              help="A directory of MODEL.npy / MODEL.npz (or one file when one model runs). Default: MODEL.npy or "
                   "MODEL.npz beside MODEL.onnx, else --samples random inputs seeded by the model's SHA-256.")
@click.option("--samples", type=click.IntRange(1, 10000), default=4, show_default=True,
              help="Random samples for models without an inputs file.")
@click.option("--update", is_flag=True, help="Rewrite the baseline with this run's figures and versions.")
@click.option("--junit", type=click.Path(dir_okay=False), default=None, help="Write a JUnit XML report here.")
@click.option("--jobs", "-j", type=click.IntRange(0, 256), default=0, show_default=True,
              help="Models measured at once in worker processes (0: one per core).")
@click.option("--renode", is_flag=True, help="Also run each model's Robot Framework suite with renode-test.")
@click.option("--timeout", type=float, default=600, show_default=True, help="Seconds before a hung firmware is stopped.")
@click.option("--no-progress", is_flag=True, help="No progress bar (it goes to stderr).")
@functools.partial(compile_options, dump=False)
@guarded
def regress(baseline, models, board, sim, inputs, samples, update, junit, jobs, renode, timeout, no_progress,
            input_shape, rounding, scale_policy):
    """Run MODELS (default: every model the BASELINE records for BOARD) and compare outputs,
    instructions, estimated cycles, arena, flash and per-layer cycles with BASELINE. Exits 1
    when a metric regressed beyond its tolerance."""
    from . import junit as junit_mod
    from . import schema
    from .run import evaluate, plan_jobs, print_table, run_jobs, summary, updated

    if renode:
        import shutil

        if shutil.which("renode") is None or shutil.which("renode-test") is None:
            raise McucError("--renode needs renode and renode-test on PATH; they are not installed here")
    base = schema.load(baseline, missing_ok=update)
    todo = plan_jobs(baseline, base, list(models), board, sim=sim, inputs=inputs, samples=samples, timeout=timeout,
                     options=options_from_cli(click.get_current_context(), input_shape, rounding, scale_policy))
    n_jobs = jobs or os.cpu_count() or 1
    outcomes = run_jobs(todo, n_jobs, progress=not no_progress)
    evaluate(base, outcomes)
    if renode:
        _run_renode(todo, base, outcomes)
    print_table(outcomes, update=update)
    if junit:
        junit_mod.write(junit, [(o.key, o.deltas, o.seconds) for o in outcomes])
    errors = [o for o in outcomes if o.record is None]
    if update:
        schema.save(updated(base, outcomes), baseline)
        click.echo(f"updated {baseline}: {len(outcomes) - len(errors)} record(s)"
                   + (f"; {len(errors)} model(s) failed to run and were left as they were" if errors else ""), err=True)
        sys.exit(1 if errors else 0)
    click.echo(summary(outcomes), err=True)
    sys.exit(1 if any(o.failing for o in outcomes) else 0)


def options_from_cli(ctx, input_shape, rounding, scale_policy):
    """The compile options given on the command line, or None when none was (each model then
    keeps the options its baseline record was compiled with)."""
    from click.core import ParameterSource

    from .schema import CompileOptions

    given = [n for n in ("input_shape", "rounding", "scale_policy")
             if ctx.get_parameter_source(n) not in (ParameterSource.DEFAULT, None)]
    if not given:
        return None
    return CompileOptions(input_shapes=parse_shapes(input_shape), rounding=rounding, scale_policy=scale_policy)


def _run_renode(todo, base, outcomes) -> None:
    import tempfile

    from .compare import REGRESSED, Delta
    from .robot import export_robot, run_suite

    for job, o in zip(todo, outcomes):
        with tempfile.TemporaryDirectory(prefix="mcuc-robot-") as tmp:
            s = export_robot(job.model, job.board, tmp, inputs=job.inputs, samples=job.samples, baseline=base,
                             options=job.options)
            r = run_suite(s.path)
        if not r["passed"]:
            o.deltas.insert(0, Delta(o.key, "renode suite", "pass", "fail", r["last_line"], REGRESSED))
        else:
            o.deltas.append(Delta(o.key, "renode ExecutedInstructions", "", f"{r['instructions']:,}",
                                  "recorded by renode-test (not compared)", "changed"))


@click.command("export-robot")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--board", "-b", required=True, help="Target board with a Renode description.")
@click.option("--output-dir", "-o", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Directory for the suite, the firmware and what the suite loads.")
@click.option("--baseline", type=click.Path(dir_okay=False, exists=True), default=None,
              help="Take the expected outputs from this baseline's record (else the reference interpreter).")
@click.option("--input", "-i", "input_path", type=click.Path(dir_okay=False), default=None,
              help="Inputs (.npy/.npz); default as for `mcuc regress`.")
@click.option("--samples", type=click.IntRange(1, 10000), default=4, show_default=True,
              help="Random samples when there is no inputs file.")
@click.option("--force", is_flag=True, help="Overwrite files mcuc generated before in DIR.")
@functools.partial(compile_options, dump=False)
@guarded
def export_robot_cmd(model, board, out_dir, baseline, input_path, samples, force, input_shape, rounding, scale_policy):
    """Write a Robot Framework suite for renode-test that runs MODEL's firmware on BOARD, asserts
    its outputs and records Renode's ExecutedInstructions."""
    from . import schema
    from .robot import export_robot

    base = schema.load(baseline) if baseline else None
    opts = options_from_cli(click.get_current_context(), input_shape, rounding, scale_policy)
    s = export_robot(model, board, out_dir, inputs=input_path, samples=samples, baseline=base, force=force,
                     options=opts)
    click.echo(f"wrote {s.path}: {s.samples} sample(s), {s.lines} output line(s) from {s.source}; "
               f"run it with: cd {Path(out_dir)} && renode-test {s.path.name}")
