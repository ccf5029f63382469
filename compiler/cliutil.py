"""What every mcuc command shares: user errors as one line, bugs as one line asking for a report.

Every user error is a McucError: printed as ``mcuc: error: ...`` with exit status 2 and no
traceback. Anything else is a compiler bug: one line asking for a report (status 3), with the
traceback only when MCUC_DEBUG=1.
"""

from __future__ import annotations

import functools
import os
import sys
import traceback

import click

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


def parse_shapes(specs) -> dict[str, list[int]]:
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


def compile_options(fn, *, dump: bool = True):
    """The options every command that compiles a model takes (``dump``: also --dump-after)."""
    fn = click.option("--input-shape", "input_shape", multiple=True, metavar="NAME=D1,D2,...",
                      help="Fix the shape of an input with dynamic dimensions (repeatable).")(fn)
    fn = click.option("--rounding", type=click.Choice(["auto", "onnx", "tflite"]), default="auto", show_default=True,
                      help="Whose integer arithmetic to reproduce: ONNX (round half to even) or TFLite Micro; "
                           "auto picks tflite for models converted by tf2onnx.")(fn)
    fn = click.option("--scale-policy", type=click.Choice(["exact", "pow2"]), default="exact", show_default=True,
                      help="exact: keep every scale (dyadic multipliers); pow2: round scales to powers of two "
                           "(shift-only requantization) and report how far outputs move.")(fn)
    if not dump:
        return fn
    fn = click.option("--dump-after", multiple=True, metavar="PASS|all",
                      help="Print the IR after a pass (or after every pass) to stderr.")(fn)
    return fn
