"""Facts computed from the IR that reports share: multiply-accumulates per node."""

from __future__ import annotations

import numpy as np

from .graph import Node


def macs(node: Node) -> int:
    """Multiply-accumulates one sample of ``node`` performs (0 for ops without a dot product)."""
    if node.op == "conv2d":
        w = node.inputs[1].type.shape  # OHWI (NHWC) or OIHW: both hold O * kh * kw * (C / groups)
        per_output = int(np.prod(w[1:]))
        return int(np.prod(node.out.type.shape)) * per_output
    if node.op == "dense":
        return int(np.prod(node.out.type.shape)) * int(node.inputs[1].type.shape[1])
    if node.op in ("matmul",):
        k = node.inputs[0].type.shape[-1]
        return int(np.prod(node.out.type.shape)) * int(k)
    return 0
