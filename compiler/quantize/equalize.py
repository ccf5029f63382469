"""Cross-layer range equalization (Nagel et al., "Data-Free Quantization", 2019).

For ``layer1 -> Relu -> layer2``, Relu(x / s) = Relu(x) / s for s > 0, so dividing output channel
c of layer1 (weights and bias) by s_c and multiplying input channel c of layer2 by s_c leaves the
network's function unchanged. Choosing s_c = sqrt(r1_c * r2_c) / r2_c (r = the channel's largest
|w|) gives both layers the same per-channel range, which shrinks the spread of ranges the shared
per-tensor activation exponent has to cover. Clip (ReLU6) is not scale-equivariant and is left
alone. quantize.py keeps the equalized model only when it quantizes better on the calibration data.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from .graph import Layer, Net, _clip_bounds

SWEEPS = 4


def pairs(net: Net) -> list[tuple[Layer, Layer]]:
    g = net.model.graph
    inits = {t.name: t for t in g.initializer}
    users: dict[str, list] = {}
    for n in g.node:
        for i in n.input:
            users.setdefault(i, []).append(n)
    by_input = {}
    for l in net.layers:
        by_input.setdefault(l.input, []).append(l)
    out = []
    for l1 in net.layers:
        u = users.get(l1.out, [])
        if len(u) != 1 or l1.out in net.outputs:
            continue
        act = u[0]
        if act.op_type == "Clip":
            lo, hi = _clip_bounds(act, inits)
            if lo != 0.0 or hi is not None:
                continue
        elif act.op_type != "Relu":
            continue
        r = act.output[0]
        nxt = by_input.get(r, [])
        if len(users.get(r, [])) != 1 or len(nxt) != 1 or r in net.outputs:
            continue
        out.append((l1, nxt[0]))
    return out


def _in_channel_view(w: np.ndarray, l2: Layer, c: int) -> tuple:
    """Index of layer2's weights that multiply its input channel c."""
    if l2.op == "Conv":
        per_group_in = w.shape[1]
        per_group_out = w.shape[0] // l2.groups
        gi, j = divmod(c, per_group_in)
        return (slice(gi * per_group_out, (gi + 1) * per_group_out), j)
    idx = [slice(None)] * w.ndim
    idx[l2.in_axis] = c
    return tuple(idx)


def equalize(net: Net) -> tuple[Net, int]:
    """A copy of ``net`` with every Relu-connected pair equalized; returns it and the pair count."""
    ps = pairs(net)
    if not ps:
        return net, 0
    m = onnx.ModelProto()
    m.CopyFrom(net.model)
    arrays = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in m.graph.initializer}
    for _ in range(SWEEPS):
        for l1, l2 in ps:
            w1, b1, w2 = arrays[l1.weight], arrays[l1.bias], arrays[l2.weight]
            w1c = np.moveaxis(w1, l1.out_axis, 0)
            channels = w1c.shape[0]
            r1 = np.abs(w1c.reshape(channels, -1)).max(axis=1)
            r2 = np.array([np.abs(w2[_in_channel_view(w2, l2, c)]).max() for c in range(channels)])
            ok = (r1 > 0) & (r2 > 0)
            s = np.ones(channels)
            s[ok] = np.sqrt(r1[ok] * r2[ok]) / r2[ok]
            shape = [1] * w1.ndim
            shape[l1.out_axis] = -1
            arrays[l1.weight] = w1 / s.reshape(shape)
            arrays[l1.bias] = b1 / s
            w2 = w2.copy()
            for c in range(channels):
                w2[_in_channel_view(w2, l2, c)] *= s[c]
            arrays[l2.weight] = w2
    touched = {n for l1, l2 in ps for n in (l1.weight, l1.bias, l2.weight)}
    new = [numpy_helper.from_array(arrays[t.name].astype(np.float32), t.name) if t.name in touched else t
           for t in m.graph.initializer]
    del m.graph.initializer[:]
    m.graph.initializer.extend(new)
    return Net(model=m, layers=net.layers, points=net.points, source=net.source, signed_hint=net.signed_hint,
               input_name=net.input_name, input_shape=net.input_shape, outputs=net.outputs), len(ps)
