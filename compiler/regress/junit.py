"""JUnit XML for CI systems: one test case per model and board, a failure listing each metric
that regressed, every other movement in the case's output."""

from __future__ import annotations

import os
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

from .compare import ERROR, Delta


def _line(d: Delta) -> str:
    tol = f" (tolerance {d.tolerance})" if d.tolerance else ""
    return f"{d.status}: {d.metric}: {d.baseline} -> {d.measured}: {d.change}{tol}"


def write(path, results: list[tuple[str, list[Delta], float]], *, suite: str = "mcuc regress") -> None:
    """``results``: (model@board, deltas, seconds) per case. Written atomically."""
    suites = ET.Element("testsuites")
    failures = sum(1 for _, ds, _ in results if any(d.failing and d.status != ERROR for d in ds)
                   and not any(d.status == ERROR for d in ds))
    errors = sum(1 for _, ds, _ in results if any(d.status == ERROR for d in ds))
    ts = ET.SubElement(suites, "testsuite", name=suite, tests=str(len(results)), failures=str(failures),
                       errors=str(errors), skipped="0", time=f"{sum(t for _, _, t in results):.3f}")
    for key, ds, secs in results:
        model, _, board = key.partition("@")
        tc = ET.SubElement(ts, "testcase", classname=f"mcuc.regress.{board.replace('/', '.')}", name=model,
                           time=f"{secs:.3f}")
        err = [d for d in ds if d.status == ERROR]
        bad = [d for d in ds if d.failing and d.status != ERROR]
        if err:
            e = ET.SubElement(tc, "error", message=err[0].change, type="run")
            e.text = "\n".join(_line(d) for d in err)
        elif bad:
            f = ET.SubElement(tc, "failure", message="; ".join(d.metric for d in bad), type="regression")
            f.text = "\n".join(_line(d) for d in bad)
        rest = [d for d in ds if not d.failing]
        if rest:
            ET.SubElement(tc, "system-out").text = "\n".join(_line(d) for d in rest)
    ET.indent(suites)
    data = ET.tostring(suites, encoding="utf-8", xml_declaration=True)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data + b"\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
