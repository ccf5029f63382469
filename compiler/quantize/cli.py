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
        budget = "none" if f["budget_bytes"] is None else f"{f['budget_bytes']} B"
        click.echo(f"  weights flash {f['weights_bytes']} B (budget {budget}; all int8 {f['all_int8_bytes']} B, "
                   f"{100.0 * f['weights_bytes'] / f['all_int8_bytes']:.1f}%)")
    if result.cycles:
        c = result.cycles
        click.echo(f"  cycles per inference on {c['board']}: {c['estimated']} (budget {c['budget']}; all int8 {c['all_int8']}; "
                   f"{c['model']})")
    if result.arena:
        a = result.arena
        budget = "none" if a["budget_bytes"] is None else f"{a['budget_bytes']} B"
        wide = ", ".join(result.int16) or "none"
        click.echo(f"  int16 activations: {wide}; arena on {a['board']} {a['arena_bytes']} B (budget {budget}; "
                   f"all int8 {a['all_int8_bytes']} B)")
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
@click.option("--weight-bits", type=click.Choice(["8", "4", "mixed", "ternary", "binary"]), default=None,
              help="Weight storage: int8, int4 (opset 21 INT4), mixed per layer under --flash-budget, or a ternary / "
                   "binary body (opset 25 INT2; first and last layers int8). [default: 8]")
@click.option("--flash-budget", metavar="BYTES|N%",
              help="Weights flash budget as mcuc's codegen counts it (implies --weight-bits mixed).")
@click.option("--cycle-budget", metavar="CYCLES|N%",
              help="Estimated cycles per inference on --board (its cycle model, one firmware run per candidate), or a "
                   "percentage of the all-int8 model's (implies --weight-bits mixed).")
@click.option("--int16-activations", "int16_activations", default="none", show_default=True, metavar="none|auto|NAME,...",
              help="Store these layers' output activations as int16 (power-of-two scale, zero point 0; weights keep "
                   "their bits): layer or tensor names, or auto (the most sensitive ones, under --arena-budget).")
@click.option("--arena-budget", metavar="BYTES|N%",
              help="With --int16-activations auto: the arena on --board, in bytes or as a percentage of the all-int8 "
                   "model's (e.g. 150%).")
@click.option("--board", default="stm32f4-discovery", show_default=True,
              help="The board whose cycle model --cycle-budget and whose memory plan --arena-budget use.")
@click.option("--bias-correction/--no-bias-correction", default=True, show_default=True,
              help="Correct each layer's bias by its mean output shift against the float model.")
@click.option("--equalization", type=click.Choice(["auto", "always", "never"]), default="auto", show_default=True,
              help="Cross-layer range equalization of Relu-connected layers (auto: only if it lowers the error).")
@click.option("--weight-rounding", type=click.Choice(["gptq", "nearest"]), default="gptq", show_default=True,
              help="gptq: round weights compensating the output error (GPTQ); nearest: round each weight to nearest.")
@click.option("--force", is_flag=True, help="Overwrite OUTPUT if it exists.")
@guarded
def quantize(model, calibration, output, activations, calibrator, percentile, weight_bits, flash_budget, cycle_budget, board,
             bias_correction, equalization, weight_rounding, int16_activations, arena_budget, force):
    """Quantize a float MODEL to power-of-two scales (post-training, static) for mcuc."""
    from .data import load_calibration
    from .ptq import Options
    from .ptq import quantize as run_quantize

    for opt, val in (("--flash-budget", flash_budget), ("--cycle-budget", cycle_budget)):
        if val is not None and weight_bits not in (None, "mixed"):
            raise McucError(f"{opt} applies to --weight-bits mixed, not {weight_bits}")
    if weight_bits is None:
        weight_bits = "mixed" if flash_budget is not None or cycle_budget is not None else "8"
    out = Path(output)
    if out.exists() and not force:
        raise McucError(f"{out} exists; pass --force to overwrite it")
    m = load_float_model(model)
    x = load_calibration(calibration)
    opts = Options(activations=activations, calibrator=calibrator, percentile=percentile, weight_bits=weight_bits,
                   flash_budget=flash_budget, cycle_budget=cycle_budget, board=board, bias_correction=bias_correction, equalization=equalization,
                   weight_rounding=weight_rounding, int16_activations=int16_activations, arena_budget=arena_budget)
    result = run_quantize(m, x, opts, where=str(model), data_where=f"calibration data {calibration}")
    out.write_bytes(result.model.SerializeToString())
    _report(result, out)


def _floats(text: str, what: str) -> tuple[float, ...]:
    try:
        vals = tuple(float(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise McucError(f"{what} {text!r}: expected comma-separated numbers, e.g. 0.5,1,2") from None
    if not vals or any(not v > 0 for v in vals):
        raise McucError(f"{what} {text!r}: expected positive numbers")
    return vals


@click.command("sweep")
@click.argument("model", required=False, type=click.Path(dir_okay=False))
@click.option("--builder", metavar="MODULE:FUNCTION",
              help="Python model builder (instead of MODEL): widths, model(width, body_bits), calibration(), labelled().")
@click.option("--calibration", "-c", type=click.Path(dir_okay=False), help="With MODEL: .npy calibration samples.")
@click.option("--data", type=click.Path(dir_okay=False), help="With MODEL: .npy labelled samples (float, N on axis 0).")
@click.option("--labels", type=click.Path(dir_okay=False), help="With MODEL: .npy integer class index per sample of --data.")
@click.option("--widths", help="Width multipliers (builder only), comma-separated. [default: the builder's]")
@click.option("--policies", default="int8,int4,mixed:70%,mixed:55%,ternary,binary", show_default=True,
              help="Bit-width policies: int8, int4 (8-bit first/last), mixed:BUDGET (solver), ternary, binary (8-bit first/last/depthwise).")
@click.option("--board", default="stm32f4-discovery", show_default=True, help="Board whose code generator and cycle model cost the points.")
@click.option("--cycles", type=click.Choice(["auto", "run", "none"]), default="auto", show_default=True,
              help="Estimate cycles by running each point's firmware once in the board's simulator (auto: when it has one).")
@click.option("--jobs", "-j", type=int, default=0, help="Worker processes. [default: one per core]")
@click.option("--output", "-o", "output", required=True, type=click.Path(file_okay=False),
              help="Directory for sweep.json and sweep.png.")
@click.option("--force", is_flag=True, help="Overwrite sweep.json / sweep.png in OUTPUT.")
@guarded
def sweep(model, builder, calibration, data, labels, widths, policies, board, cycles, jobs, output, force):
    """Accuracy against cost over bit-width policies (and width multipliers): JSON + Pareto plot."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from .sweep import Config, Source, plot, policy_spec, run_sweep, write_json

    if (model is None) == (builder is None):
        raise McucError("give either MODEL (with --calibration, --data and --labels) or --builder MODULE:FUNCTION")
    if model is not None:
        missing = [n for n, v in (("--calibration", calibration), ("--data", data), ("--labels", labels)) if v is None]
        if missing:
            raise McucError(f"MODEL needs {', '.join(missing)}")
        if widths:
            raise McucError("--widths needs --builder (an ONNX file has one width)")
        src = Source(model_path=model, calibration_path=calibration, data_path=data, labels_path=labels)
    else:
        src = Source(builder=builder)
    pols = tuple(p.strip() for p in policies.split(",") if p.strip())
    if not pols:
        raise McucError("--policies is empty")
    for p in pols:
        policy_spec(p)
    if jobs < 0:
        raise McucError(f"--jobs {jobs}: expected a positive number")
    out = Path(output)
    jpath, ppath = out / "sweep.json", out / "sweep.png"
    if not force and (jpath.exists() or ppath.exists()):
        raise McucError(f"{out} already holds a sweep; pass --force to overwrite it")
    loaded = src.load()
    ws = _floats(widths, "--widths") if widths else tuple(loaded.widths)
    from ..boards import load_board

    load_board(board)
    cfg = Config(src, ws, pols, board=board, cycles=cycles, jobs=jobs)
    with Progress(TextColumn("[bold]sweep"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.description}"), transient=True) as prog:
        task = prog.add_task("building float models", total=None)

        def step(done, total, text):
            prog.update(task, completed=done, total=total, description=text)

        points, meta = run_sweep(cfg, step)
    name = getattr(loaded, "name", Path(model).stem if model else builder)
    out.mkdir(parents=True, exist_ok=True)
    # Both files or neither: written beside, then renamed.
    tmp_j, tmp_p = out / ".sweep.json.tmp", out / ".sweep.png.tmp"
    try:
        write_json(tmp_j, name, points, meta)
        plot(tmp_p, name, points, meta)
        tmp_j.replace(jpath)
        tmp_p.replace(ppath)
    finally:
        tmp_j.unlink(missing_ok=True)
        tmp_p.unlink(missing_ok=True)
    click.echo(f"wrote {jpath} and {ppath} ({len(points)} points, {meta['seconds']} s, {meta['jobs']} worker(s))")
    click.echo(f"  cycles: {meta['cycles']}")
    click.echo(f"  {'policy':12s} {'width':>5s} {'accuracy':>9s} {'float':>7s} {'weights B':>9s} {'arena B':>8s} "
               f"{'cycles':>9s}  pareto")
    for p in points:
        if p.error:
            click.echo(f"  {p.policy:12s} {p.width:5g}  failed: {p.error}")
            continue
        mark = ",".join(k for k, v in (("flash", p.pareto_flash), ("cycles", p.pareto_cycles)) if v)
        cyc = f"{p.cycles:9d}" if p.cycles is not None else f"{'-':>9s}"
        click.echo(f"  {p.policy:12s} {p.width:5g} {100 * p.accuracy:8.2f}% {100 * p.float_accuracy:6.2f}% "
                   f"{p.weights_bytes:9d} {p.arena_bytes:8d} {cyc}  {mark}")
