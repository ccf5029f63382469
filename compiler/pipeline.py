"""The whole compiler as one list of steps: read it top to bottom.

    ONNX file
      -> import                 ONNX nodes -> IR ops with float semantics, explicit quantize/dequantize
      -> normalize  (fixpoint)  fold-constants, reimport, bind-qparams, round-scales-pow2, fold-batchnorm
      -> lower      (fixpoint)  lower-conv ... lower-lut, drop-identity: integer ops replace every QDQ pattern
      -> fuse       (fixpoint)  fuse-epilogue: requantization and clamps into their producers
      -> layout     (fixpoint)  layout-nhwc, cancel-transposes, fold-transpose-dense, dead-code
      -> check-lowered          anything still float becomes a precise user error
      -> verify(integer_only)   the invariant codegen relies on
      -> codegen                (compiler/codegen)

Every step runs the verifier after each pass and can dump the IR (``--dump-after PASS|all``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .frontend import import_onnx
from .ir.graph import Graph
from .ir.printer import print_graph
from .ir.verifier import verify
from .passes import PassContext, run_fixpoint, run_pass

NORMALIZE = ["fold-constants", "reimport", "bind-qparams", "round-scales-pow2", "fold-batchnorm"]
LOWER = ["batchnorm-to-conv", "lower-conv", "fold-bias-add", "lower-activation", "lower-requantize", "lower-movement",
         "lower-add", "lower-avgpool", "lower-softmax", "lower-lut", "drop-identity", "dead-code"]
FUSE = ["fuse-epilogue", "dead-code"]
LAYOUT = ["layout-nhwc", "cancel-transposes", "fold-transpose-dense", "fuse-epilogue", "dead-code"]


@dataclass(frozen=True)
class Step:
    name: str
    passes: tuple[str, ...]
    fixpoint: bool = True


PIPELINE: list[Step] = [
    Step("normalize", tuple(NORMALIZE)),
    Step("lower", tuple(LOWER)),
    Step("fuse", tuple(FUSE)),
    Step("layout", tuple(LAYOUT)),
    Step("check", ("check-lowered",), fixpoint=False),
]


def convention_for(g: Graph, requested: str = "auto") -> str:
    """Whose integer arithmetic to reproduce where ONNX leaves rounding open.

    Models converted from TFLite by tf2onnx follow TFLite Micro (double-rounding requantization,
    average pools rounding half away from zero); everything else follows ONNX (half to even).
    """
    if requested != "auto":
        return requested
    return "tflite" if (g.meta.get("producer") or "").lower().startswith("tf2onnx") else "onnx"


def lower_graph(g: Graph, ctx: PassContext) -> Graph:
    verify(g, stage="import")
    if ctx.wants_dump("import"):
        ctx.dump(f"// after import\n{print_graph(g)}")
    for step in PIPELINE:
        if step.fixpoint:
            run_fixpoint(list(step.passes), g, ctx)
        else:
            for p in step.passes:
                run_pass(p, g, ctx)
    verify(g, integer_only=True, stage="pipeline")
    return g


def compile_model(path: str | Path, *, input_shapes=None, convention: str = "auto", scale_policy: str = "exact",
                  dump_after=(), dump=print) -> Graph:
    g = import_onnx(path, input_shapes)
    ctx = PassContext(convention=convention_for(g, convention), scale_policy=scale_policy,
                      dump_after=set(dump_after), dump=dump)
    g.meta["convention"] = ctx.convention
    return lower_graph(g, ctx)
