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
