"""A stable text form of the IR, read by humans (``--dump-after``) and golden tests.

One line per node: ``%out: type = op(%in, ...) {attrs}``. Constants are summarised by type
and a content hash, never printed in full, so dumps stay small and diffs stay meaningful.
"""

from __future__ import annotations

import hashlib

import numpy as np

from .graph import Graph, Value
from .quant import QParams, Requant


def _attr(v) -> str:
    if isinstance(v, Requant):
        return v.text()
    if isinstance(v, QParams):
        return v.text()
    if isinstance(v, np.ndarray):
        if v.size <= 8:
            return "[" + ",".join(str(x) for x in v.reshape(-1).tolist()) + "]"
        return f"<{v.dtype}{list(v.shape)} #{hashlib.sha256(np.ascontiguousarray(v).tobytes()).hexdigest()[:8]}>"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}={_attr(x)}" for k, x in sorted(v.items())) + "}"
    if isinstance(v, (list, tuple)):
        return "(" + ",".join(_attr(x) for x in v) + ")"
    if isinstance(v, float):
        return f"{v:.9g}"
    return str(v)


def _const_text(v: Value) -> str:
    h = hashlib.sha256(np.ascontiguousarray(v.const).tobytes()).hexdigest()[:8]
    return f"const %{v.name}: {v.type.text()} #{h}"


def print_graph(g: Graph) -> str:
    lines = [f"graph {g.name}("]
    for v in g.inputs:
        lines.append(f"    %{v.name}: {v.type.text()},")
    lines.append(") {")
    seen = set()
    for n in g.nodes:
        for i in n.inputs:
            if i is not None and i.is_const and i.id not in seen:
                seen.add(i.id)
                lines.append("  " + _const_text(i))
    for n in g.nodes:
        outs = ", ".join(f"%{o.name}: {o.type.text()}" for o in n.outputs)
        ins = ", ".join("_" if i is None else f"%{i.name}" for i in n.inputs)
        attrs = ", ".join(f"{k}={_attr(v)}" for k, v in sorted(n.attrs.items()))
        lines.append(f"  {outs} = {n.op}({ins})" + (f" {{{attrs}}}" if attrs else "") + f"  # {n.name}")
    lines.append("  return " + ", ".join(f"%{o.name}" for o in g.outputs))
    lines.append("}")
    return "\n".join(lines) + "\n"
