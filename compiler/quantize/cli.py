"""``mcuc quantize``: a float ONNX model and calibration samples -> a power-of-two QDQ model."""

from __future__ import annotations

from pathlib import Path

import click

from ..cliutil import guarded
from ..errors import McucError


def load_float_model(path: str):
    import onnx

    p = Path(path)
    if not p.is_file():
        raise McucError(f"{p}: no such file")
    from google.protobuf.message import DecodeError

    try:
        return onnx.load(str(p))
    except (DecodeError, OSError, ValueError) as e:
        raise McucError(f"{p}: not a readable ONNX model ({type(e).__name__})") from None


def _report(result, out) -> None:
    net = result.net
    click.echo(f"wrote {out}: power-of-two QDQ, calibration output error {result.error:.3g} (relative MSE)")
    for l in net.layers:
        c = result.plan[l.name]
        click.echo(f"  {l.name:28s} {l.op:6s} weights {c.text()}")
    for p in net.points:
        click.echo(f"  {p:28s} activation {result.acts[p].text()}")
    if result.flash:
        f = result.flash
        click.echo(f"  weights flash {f['weights_bytes']} B (budget {f['budget_bytes']} B; all int8 {f['all_int8_bytes']} B, "
                   f"{100.0 * f['weights_bytes'] / f['all_int8_bytes']:.1f}%)")
    for n in result.notes:
        click.echo(f"  note: {n}")


@click.command("quantize")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--calibration", "-c", required=True, type=click.Path(dir_okay=False),
              help=".npy with N float samples of the model input stacked on axis 0 (at least 8; a few hundred recommended).")
@click.option("--output", "-o", "output", required=True, type=click.Path(dir_okay=False), help="The quantized QDQ model.")
@click.option("--activations", type=click.Choice(["symmetric", "asymmetric"]), default="symmetric", show_default=True,
              help="symmetric: zero point 0 (uint8 where a tensor cannot be negative); asymmetric: int8 with a zero point.")
@click.option("--calibrator", type=click.Choice(["minmax", "percentile", "mse"]), default="mse", show_default=True,
              help="How each activation's exponent is chosen: cover the range, cover a percentile, or least squared error.")
@click.option("--percentile", type=float, default=99.99, show_default=True, help="The percentile of --calibrator percentile.")
@click.option("--weight-bits", type=click.Choice(["8", "4", "mixed"]), default=None,
              help="Weight storage: int8, int4 (opset 21 INT4), or mixed per layer under --flash-budget. [default: 8]")
@click.option("--flash-budget", metavar="BYTES|N%",
              help="Weights flash budget as mcuc's codegen counts it (implies --weight-bits mixed).")
@click.option("--bias-correction/--no-bias-correction", default=True, show_default=True,
              help="Correct each layer's bias by its mean output shift against the float model.")
@click.option("--equalization", type=click.Choice(["auto", "always", "never"]), default="auto", show_default=True,
              help="Cross-layer range equalization of Relu-connected layers (auto: only if it lowers the error).")
@click.option("--weight-rounding", type=click.Choice(["gptq", "nearest"]), default="gptq", show_default=True,
              help="gptq: round weights compensating the output error (GPTQ); nearest: round each weight to nearest.")
@click.option("--force", is_flag=True, help="Overwrite OUTPUT if it exists.")
@guarded
def quantize(model, calibration, output, activations, calibrator, percentile, weight_bits, flash_budget, bias_correction,
             equalization, weight_rounding, force):
    """Quantize a float MODEL to power-of-two scales (post-training, static) for mcuc."""
    from .data import load_calibration
    from .ptq import Options
    from .ptq import quantize as run_quantize

    if flash_budget is not None and weight_bits in ("8", "4"):
        raise McucError(f"--flash-budget applies to --weight-bits mixed, not {weight_bits}")
    if weight_bits is None:
        weight_bits = "mixed" if flash_budget is not None else "8"
    out = Path(output)
    if out.exists() and not force:
        raise McucError(f"{out} exists; pass --force to overwrite it")
    m = load_float_model(model)
    x = load_calibration(calibration)
    opts = Options(activations=activations, calibrator=calibrator, percentile=percentile, weight_bits=weight_bits,
                   flash_budget=flash_budget, bias_correction=bias_correction, equalization=equalization,
                   weight_rounding=weight_rounding)
    result = run_quantize(m, x, opts, where=str(model), data_where=f"calibration data {calibration}")
    out.write_bytes(result.model.SerializeToString())
    _report(result, out)
