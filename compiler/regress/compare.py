"""Compare a measured record with its baseline: every metric that moved, and whether it moved
beyond its tolerance in the bad direction (a regression), the good one (an improvement: the
baseline should be updated) or neither (within tolerance, or a change that is not better or
worse, such as a renamed layer)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .schema import Record, Tolerances

REGRESSED, IMPROVED, CHANGED, NEW, ERROR = "regressed", "improved", "changed", "new", "error"
FAILING = (REGRESSED, NEW, ERROR)


@dataclass
class Delta:
    key: str  # model@board
    metric: str  # e.g. "cycles", "arena_bytes", "outputs", "layer l2_conv cycles"
    baseline: str
    measured: str
    change: str
    status: str  # one of REGRESSED, IMPROVED, CHANGED, NEW, ERROR
    tolerance: str = ""

    @property
    def failing(self) -> bool:
        return self.status in FAILING


def _rel(metric: str, key: str, old, new, tol: float) -> Delta | None:
    if old is None and new is None:
        return None
    if old is None or new is None:
        return Delta(key, metric, str(old), str(new), "measured only on one side", CHANGED)
    if old == new:
        return None
    frac = (new - old) / old if old else float("inf")
    if abs(frac) <= tol and old:
        status = CHANGED
    else:
        status = REGRESSED if new > old else IMPROVED
    return Delta(key, metric, f"{old:,}", f"{new:,}", f"{new - old:+,} ({frac * 100:+.2f}%)", status, f"{tol * 100:g}%")


def _abs(metric: str, key: str, old, new, tol: int) -> Delta | None:
    if old is None and new is None or old == new:
        return None
    if old is None or new is None:
        return Delta(key, metric, str(old), str(new), "measured only on one side", CHANGED)
    d = new - old
    status = CHANGED if abs(d) <= tol else (REGRESSED if d > 0 else IMPROVED)
    return Delta(key, metric, f"{old:,}", f"{new:,}", f"{d:+,} B", status, f"{tol} B")


def _outputs(key: str, base: Record, got: Record, tol: Tolerances) -> list[Delta]:
    out = []
    for name in sorted(set(base.outputs) | set(got.outputs)):
        metric = f"output {name}"
        b, g = base.outputs.get(name), got.outputs.get(name)
        if b is None or g is None:
            out.append(Delta(key, metric, "absent" if b is None else "present", "absent" if g is None else "present",
                             "output added or removed", REGRESSED))
            continue
        if b.sha256 == g.sha256 and b.dtype == g.dtype and b.shape == g.shape:
            continue
        if b.dtype != g.dtype or b.shape != g.shape:
            out.append(Delta(key, metric, f"{b.dtype}{b.shape}", f"{g.dtype}{g.shape}", "type or shape changed", REGRESSED))
            continue
        x, y = b.array().astype(np.int64), g.array().astype(np.int64)
        diff = np.abs(x - y)
        bad = int(np.count_nonzero(diff))
        first = np.unravel_index(int(np.flatnonzero(diff)[0]), diff.shape)
        status = CHANGED if int(diff.max()) <= tol.output_steps else REGRESSED
        where = ",".join(str(int(i)) for i in first)
        out.append(Delta(key, metric, f"sha256 {b.sha256[:12]}", f"sha256 {g.sha256[:12]}",
                         f"{bad} of {diff.size} elements differ, max {int(diff.max())} step(s); first [{where}]: "
                         f"{int(x[first])} -> {int(y[first])}", status, f"{tol.output_steps} step(s)"))
    return out


def compare(base: Record | None, got: Record, tol: Tolerances) -> list[Delta]:
    """Every difference between ``base`` and ``got`` worth showing, regressions first."""
    key = got.key
    if base is None:
        return [Delta(key, "record", "none", "measured", "no baseline record: run with --update to add it", NEW)]
    ds: list[Delta] = []
    if not got.interpreter_exact:
        ds.append(Delta(key, "interpreter", "bit-exact" if base.interpreter_exact else "differs", "differs",
                        "outputs differ from the reference interpreter's", REGRESSED))
    if base.inputs_sha256 != got.inputs_sha256:
        ds.append(Delta(key, "inputs", base.inputs_sha256[:12], got.inputs_sha256[:12],
                        "the inputs differ from the baseline's: outputs are not comparable", REGRESSED))
    else:
        ds += _outputs(key, base, got, tol)
    if base.model_sha256 != got.model_sha256:
        ds.append(Delta(key, "model_sha256", base.model_sha256[:12], got.model_sha256[:12], "the model file changed", CHANGED))
    ds += [d for d in (
        _rel("instructions", key, base.instructions, got.instructions, tol.instructions_rel),
        _rel("cycles", key, base.cycles, got.cycles, tol.cycles_rel),
        _abs("arena_bytes", key, base.arena_bytes, got.arena_bytes, tol.arena_bytes),
        _abs("flash_bytes", key, base.flash_bytes, got.flash_bytes, tol.flash_bytes),
    ) if d is not None]
    old = {li.name: li for li in base.layers}
    new = {li.name: li for li in got.layers}
    for name in [li.name for li in base.layers] + [n for n in new if n not in old]:
        if name not in new or name not in old:
            ds.append(Delta(key, f"layer {name}", "present" if name in old else "absent",
                            "present" if name in new else "absent", "layer added or removed", CHANGED))
            continue
        d = _rel(f"layer {name} cycles", key, old[name].cycles, new[name].cycles, tol.layer_cycles_rel)
        if d is not None:
            ds.append(d)
    if base.simulator != got.simulator or base.toolchain != got.toolchain:
        ds.append(Delta(key, "environment", f"{base.simulator}; {base.toolchain}", f"{got.simulator}; {got.toolchain}",
                        "simulator or toolchain differs from the baseline's", CHANGED))
    order = {REGRESSED: 0, NEW: 0, ERROR: 0, IMPROVED: 1, CHANGED: 2}
    return sorted(ds, key=lambda d: order[d.status])


def error_delta(key: str, message: str) -> Delta:
    return Delta(key, "run", "", "failed", message, ERROR)
