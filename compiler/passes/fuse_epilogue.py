"""fuse-epilogue: fold requantization and activation clamps into the op that produces them.

* ``requantize(acc)`` of a conv2d / dense int32 accumulator -> the op's own requant / out_zp / act.
* ``clamp`` after an op with an epilogue (conv2d, dense, add, mul, avgpool, requantize) -> its act.
* ``clamp(acc)`` before a ``requantize`` -> the requantize's act, mapped through the (monotonic)
  requantization: ``requant(clamp(x, L, H)) == clamp(requant(x), requant(L), requant(H))``.
Preconditions: the intermediate value has no other use. Exact: no rounding changes.
"""

from __future__ import annotations

import numpy as np

from ..ir import rounding
from ..ir.graph import Graph
from . import register
from ._match import single_use

_EPILOGUE_OPS = ("conv2d", "dense", "add", "mul", "avgpool", "requantize")


def _act(node):
    if node.op == "add":
        return node.attrs["params"]["act"]
    dt = node.out.type.dtype
    return node.attrs.get("act") or (dt.qmin, dt.qmax)


def _set_act(node, act):
    if node.op == "add":
        node.attrs["params"] = {**node.attrs["params"], "act": act}
    else:
        node.attrs["act"] = act


@register("fuse-epilogue")
def fuse_epilogue(g: Graph, ctx) -> bool:
    changed = False
    for node in list(g.nodes):
        if node not in g.nodes:
            continue
        x = node.inputs[0] if node.inputs else None
        p = x.producer if x is not None else None
        if p is None or not single_use(g, x):
            continue
        if node.op == "requantize" and p.op in ("conv2d", "dense") and p.attrs.get("requant") is None and node.attrs["in_zp"] == 0:
            rq = node.attrs["requant"]
            chan = p.out.type.shape[-1] if p.op == "dense" or p.attrs.get("layout") == "NHWC" else p.out.type.shape[1]
            if rq.per_channel and rq.shift.size != chan:
                continue
            p.attrs.update(requant=rq, out_zp=node.attrs["out_zp"], act=tuple(node.attrs["act"]))
            p.outputs = [node.out]
            node.out.producer = p
            g.remove(node)
            changed = True
        elif node.op == "clamp" and p.op in _EPILOGUE_OPS and p.out.type.dtype is node.out.type.dtype and not (
                p.op in ("conv2d", "dense") and p.attrs.get("requant") is None):
            lo, hi = _act(p)
            _set_act(p, (max(lo, node.attrs["lo"]), min(hi, node.attrs["hi"])))
            p.outputs = [node.out]
            node.out.producer = p
            g.remove(node)
            changed = True
        elif node.op == "requantize" and p.op == "clamp":
            lo, hi = p.attrs["lo"], p.attrs["hi"]
            rq = node.attrs["requant"]
            zi, zo = node.attrs["in_zp"], node.attrs["out_zp"]
            dt = node.out.type.dtype
            # Per-channel requantizations map the bounds per channel: fold only when they agree.
            mapped = []
            for v in (lo, hi):
                r = np.unique(rounding.saturate(rq.apply(np.full(rq.shift.shape, v - zi, np.int64), 0 if rq.per_channel else None) + zo, dt.qmin, dt.qmax))
                mapped.append(int(r[0]) if r.size == 1 else None)
            if None in mapped:
                continue
            a_lo, a_hi = node.attrs["act"]
            node.attrs["act"] = (max(a_lo, mapped[0]), min(a_hi, mapped[1]))
            node.inputs = [p.inputs[0]]
            g.remove(p)
            changed = True
    return changed

