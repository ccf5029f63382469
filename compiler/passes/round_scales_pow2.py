"""round-scales-pow2: the ``pow2`` scale policy: every activation and weight scale -> nearest 2^k.

Only active when the compile option ``--scale-policy pow2`` is given. Rounds in the log domain
(the nearest power of two by ratio) on 8/16-bit and sub-byte tensors; int32 biases keep their
real values (lower-conv moves them onto the new accumulator grid). This changes the model's
arithmetic on purpose, so that every requantization becomes a shift; the CLI reports how far
the outputs move on the given inputs. Preconditions: bind-qparams ran.
"""

from __future__ import annotations

import numpy as np

from ..ir.graph import Graph
from ..ir.quant import QParams
from . import register


def nearest_pow2(s: np.ndarray) -> np.ndarray:
    return np.exp2(np.round(np.log2(np.asarray(s, np.float64))))


@register("round-scales-pow2")
def round_scales_pow2(g: Graph, ctx) -> bool:
    if ctx.scale_policy != "pow2":
        return False
    changed = False
    for v in g.all_values():
        q = v.type.quant
        if q is None or not v.type.dtype.is_int or v.type.dtype.bits > 16:
            continue
        if q.exponents is not None:
            continue
        new = nearest_pow2(q.scale)
        worst = float(np.max(np.abs(np.log2(new / q.scale))))
        v.type.quant = QParams(new, q.zero_point, q.axis)
        ctx.notes.append(f"pow2: {v.name}: scale moved by up to x{2 ** worst:.3f}")
        changed = True
    return changed
