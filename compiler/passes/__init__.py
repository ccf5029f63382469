"""Graph passes: one per file, registered by a kebab-case name.

A pass is ``fn(graph, ctx) -> bool`` (True if it changed the graph). ``run_fixpoint`` repeats a
group until none changes anything, with an iteration cap, and the verifier runs after every
pass so a broken invariant names the pass that broke it.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Callable

from ..errors import McucError
from ..ir.graph import Graph
from ..ir.printer import print_graph
from ..ir.verifier import verify

PASSES: dict[str, Callable[[Graph, "PassContext"], bool]] = {}


def register(name: str):
    def deco(fn):
        if name in PASSES:
            raise KeyError(f"pass {name} registered twice")
        fn.pass_name = name
        PASSES[name] = fn
        return fn

    return deco


@dataclass
class PassContext:
    """Options and sinks shared by passes of one compilation."""

    convention: str = "onnx"  # 'onnx' (ONNX rounding) or 'tflite' (TFLite Micro arithmetic)
    scale_policy: str = "exact"  # 'exact' (dyadic multipliers) or 'pow2' (round scales to 2^k)
    dump_after: set[str] = field(default_factory=set)  # pass names, or {'all'}
    dump: Callable[[str], None] = print
    notes: list[str] = field(default_factory=list)  # facts passes report (e.g. pow2 rounding)

    def wants_dump(self, name: str) -> bool:
        return "all" in self.dump_after or name in self.dump_after


def run_pass(name: str, g: Graph, ctx: PassContext) -> bool:
    fn = PASSES[name]
    changed = bool(fn(g, ctx))
    if changed:
        g.toposort()
    verify(g, stage=name)
    if ctx.wants_dump(name):
        ctx.dump(f"// after {name}{'' if changed else ' (no change)'}\n{print_graph(g)}")
    return changed


def run_fixpoint(names: list[str], g: Graph, ctx: PassContext, cap: int = 50) -> int:
    """Run the group until nothing changes; returns the number of rounds."""
    for rounds in range(1, cap + 1):
        changed = False
        for n in names:
            changed |= run_pass(n, g, ctx)
        if not changed:
            return rounds
    raise McucError(f"passes {', '.join(names)} did not reach a fixed point in {cap} rounds (a compiler bug)")


def _load_all():
    for m in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{m.name}")


_load_all()
