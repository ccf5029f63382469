"""``mcuc profile`` (registered in compiler/cli.py)."""

from __future__ import annotations

import functools

import click

from ..cliutil import compile_options, guarded, parse_shapes


@click.command("profile")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--board", "-b", required=True, help="Target board (see `mcuc boards`).")
@click.option("--sim", type=click.Choice(["auto", "qemu", "unicorn", "renode"]), default="auto", show_default=True,
              help="Simulator for firmware boards (as for `mcuc run`).")
@click.option("--input", "-i", "input_path", type=click.Path(dir_okay=False), default=None,
              help="Inputs (.npy/.npz). Default: MODEL.npy/.npz beside the model, else random samples seeded by its SHA-256.")
@click.option("--labels", type=click.Path(dir_okay=False, exists=True), default=None,
              help=".npy of N class indices: top-1 accuracy of the first output.")
@click.option("--reference", type=click.Path(dir_okay=False, exists=True), default=None,
              help=".npy/.npz of reference outputs (e.g. the float model's) to compare the first output with.")
@click.option("--samples", type=click.IntRange(1, 10000), default=4, show_default=True,
              help="Random samples when there is no inputs file.")
@click.option("--output-dir", "-o", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Directory for index.html, the PNG charts and profile.json.")
@click.option("--timeout", type=float, default=600, show_default=True, help="Seconds before a hung firmware is stopped.")
@functools.partial(compile_options, dump=False)
@guarded
def profile(model, board, sim, input_path, labels, reference, samples, out_dir, timeout, input_shape, rounding,
            scale_policy):
    """Write an HTML report of MODEL on BOARD: estimated cycles and cycles/MAC per layer, arena
    timeline, flash breakdown and accuracy. Opens from disk, no server needed."""
    from ..regress.schema import CompileOptions
    from .report import profile as run_profile

    opts = CompileOptions(input_shapes=parse_shapes(input_shape), rounding=rounding, scale_policy=scale_policy)
    d = run_profile(model, board, out_dir, sim=sim, input_path=input_path, labels=labels, reference=reference,
                    samples=samples, timeout=timeout, options=opts)
    extra = f", {d['cycles']:,} estimated cycles per inference" if d["cycles"] else ""
    click.echo(f"wrote {out_dir}/index.html ({len(d['charts'])} charts){extra}")
