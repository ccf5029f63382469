"""cancel-transposes: remove the transposes layout changes leave behind.

* ``transpose(transpose(x, p), q)`` -> one transpose of the composed permutation, or nothing.
* a transpose that only moves size-1 axes -> a reshape (no data moves).
* an elementwise integer op (requantize, clamp, lut; add of two equally transposed inputs)
  applied to a transposed tensor -> the op first, the transpose after it, so transposes meet
  and cancel; likewise concat (its axis remapped) and the activation of a graph output.
Transposes with other users stay for them (dead-code removes unused ones).
Per-channel quantized values are left alone.
Preconditions: layout-nhwc ran; nothing else. Does not move transposes through ops other than
those listed (pools and convs are layout-specific and keep theirs).
"""

from __future__ import annotations

from ..ir.graph import Graph, TensorType
from . import register
from .layout_nhwc import _q_axis

_UNARY = ("requantize", "clamp", "lut")


def _compose(p, q):
    return tuple(p[i] for i in q)


@register("cancel-transposes")
def cancel_transposes(g: Graph, ctx) -> bool:
    changed = False
    for node in list(g.nodes):
        if node not in g.nodes:
            continue
        if node.op == "transpose":
            x = node.inputs[0]
            perm = tuple(node.attrs["perm"])
            if perm == tuple(range(len(perm))):
                g.remove(node)
                g.replace_output_keep_name(node.out, x)
                changed = True
                continue
            inner = x.producer
            if inner is not None and inner.op == "transpose":
                # The inner transpose stays for its other users, if any; dead-code drops it otherwise.
                node.attrs["perm"] = _compose(inner.attrs["perm"], perm)
                node.inputs = [inner.inputs[0]]
                changed = True
                continue
            big = [a for a in perm if x.type.shape[a] != 1]
            if big == sorted(big):
                r = g.add_node("reshape", [x], [node.out.type.with_(layout=node.out.type.layout)],
                               {"shape": node.out.type.shape}, name=node.name, before=node)
                if node.out.type.quant is not None and node.out.type.quant.per_channel:
                    g.remove(r)
                    continue
                g.remove(node)
                g.replace_output_keep_name(node.out, r.out)
                changed = True
                continue
        if node.op in _UNARY + ("add", "concat"):
            ins = node.inputs
            ts = [i.producer for i in ins]
            if not all(t is not None and t.op == "transpose" for t in ts):
                continue
            perm = tuple(ts[0].attrs["perm"])
            if any(tuple(t.attrs["perm"]) != perm for t in ts):
                continue
            if node.op == "add" and ins[0].type.shape != ins[1].type.shape:
                continue
            if node.op == "requantize" and node.attrs["requant"].per_channel:
                continue
            if any(t.inputs[0].type.quant is not None and t.inputs[0].type.quant.per_channel for t in ts):
                continue
            attrs = dict(node.attrs)
            inv = tuple(perm.index(i) for i in range(len(perm)))
            if node.op == "concat":
                attrs["axis"] = perm[node.attrs["axis"]]
            src = [t.inputs[0] for t in ts]
            shape = tuple(node.out.type.shape[i] for i in inv)
            inner = g.add_node(node.op, src, [TensorType(shape, node.out.type.dtype, _q_axis(node.out.type.quant, inv), src[0].type.layout)],
                               attrs, name=node.name, before=node)
            outer = g.add_node("transpose", [inner.out], [node.out.type.with_()], {"perm": perm}, name=f"{node.name}_t", before=node)
            g.remove(node)
            g.replace_output_keep_name(node.out, outer.out)
            changed = True
    return changed
