"""Error-compensating weight rounding (GPTQ: Frantar et al., 2022) with fixed power-of-two scales.

Rounding each weight to its nearest level minimises the error of the weights, not of the layer's
output. GPTQ rounds one input column at a time and pushes the rounding error onto the columns not
yet rounded, weighted by the inverse of H = X X^T (X: the layer's inputs on the calibration data,
as the quantized model computes them), which minimises ||W X - Q X|| far better than rounding to
nearest -- decisive at 4 bits. The per-channel exponents stay what the MSE search chose, so the
scales remain powers of two and the integers stay in range.
"""

from __future__ import annotations

import numpy as np

from .calibrate import round_to_grid
from .graph import Layer

DAMP = 0.01  # fraction of the mean diagonal added to H, as in the paper


def _pads(node_attrs: dict, in_hw, kernel, strides, dilations):
    auto = node_attrs.get("auto_pad", "NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        pads = []
        for size, k, s, d in zip(in_hw, kernel, strides, dilations):
            out = -(-size // s)
            total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
            pads.append((total // 2, total - total // 2) if auto == "SAME_UPPER" else (total - total // 2, total // 2))
        return pads
    if auto == "VALID":
        return [(0, 0), (0, 0)]
    p = list(node_attrs.get("pads", [0, 0, 0, 0]))
    return [(p[0], p[2]), (p[1], p[3])]


def conv_columns(x: np.ndarray, attrs: dict, kernel) -> np.ndarray:
    """im2col: [N, C, H, W] -> [C, kh, kw, N * out_h * out_w] (the weight layout OIHW reads it row-wise)."""
    n, c, h, w = x.shape
    kh, kw = kernel
    sh, sw = attrs.get("strides", [1, 1])
    dh, dw = attrs.get("dilations", [1, 1])
    (pt, pb), (pl, pr) = _pads(attrs, (h, w), kernel, (sh, sw), (dh, dw))
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    oh = (h + pt + pb - dh * (kh - 1) - 1) // sh + 1
    ow = (w + pl + pr - dw * (kw - 1) - 1) // sw + 1
    cols = np.empty((c, kh, kw, n, oh, ow), np.float64)
    for i in range(kh):
        for j in range(kw):
            patch = xp[:, :, i * dh: i * dh + sh * (oh - 1) + 1: sh, j * dw: j * dw + sw * (ow - 1) + 1: sw]
            cols[:, i, j] = patch.transpose(1, 0, 2, 3)
    return cols.reshape(c, kh, kw, -1)


def _hessian(x: np.ndarray) -> np.ndarray:
    h = x @ x.T / max(x.shape[1], 1)
    dead = np.diag(h) == 0
    h[dead, dead] = 1.0
    return h + DAMP * float(np.mean(np.diag(h))) * np.eye(len(h))


def _gptq(w: np.ndarray, h: np.ndarray, scales: np.ndarray, bits: int) -> np.ndarray:
    """GPTQ with columns in decreasing order of H's diagonal ("act order": the inputs carrying
    the most energy are rounded first, while the most columns remain to absorb their error)."""
    order = np.argsort(-np.diag(h), kind="stable")
    hp = h[np.ix_(order, order)]
    w = w[:, order].copy()
    try:
        u = np.linalg.cholesky(np.linalg.inv(hp)).T
    except np.linalg.LinAlgError:
        return round_to_grid(w / scales[:, None], bits)[:, np.argsort(order)]
    q = np.empty_like(w)
    for j in range(w.shape[1]):
        col = w[:, j]
        qj = round_to_grid(col / scales, bits)
        q[:, j] = qj
        err = (col - qj * scales) / u[j, j]
        w[:, j + 1:] -= np.outer(err, u[j, j + 1:])
    return q[:, np.argsort(order)]


def round_rows(w: np.ndarray, x: np.ndarray, exps: np.ndarray, bits: int,
               per_channel: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Integer rows Q [R, K] and their exponents for float rows ``w`` [R, K] given inputs ``x``
    [K, samples]. GPTQ runs with the given exponents and with each one step coarser and finer;
    each row (or, per tensor, the layer) keeps the one whose output error (w - q) H (w - q)^T is
    least: with GPTQ rounding the best exponent is often not the weight-MSE one."""
    w = w.astype(np.float64)
    h = _hessian(x)
    w = np.where(np.diag(x @ x.T)[None, :] == 0, 0.0, w)
    best_q, best_e, best_err = None, None, None
    for d in (0, 1, -1):
        e = exps + d
        s = 2.0 ** e.astype(np.float64)
        q = _gptq(w, h, s, bits)
        r = w - q * s[:, None]
        err = np.einsum("ij,jk,ik->i", r, h, r)
        if not per_channel:
            err = np.full_like(err, err.sum())
        if best_err is None:
            best_q, best_e, best_err = q, e.copy(), err
            continue
        better = err < best_err
        best_q = np.where(better[:, None], q, best_q)
        best_e = np.where(better, e, best_e)
        best_err = np.where(better, err, best_err)
    return best_q, best_e


def gptq_layer(layer: Layer, node_attrs: dict, w: np.ndarray, x: np.ndarray, exps: np.ndarray, bits: int,
               per_channel: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The layer's integer weights (int8 storage) and exponents, rounded against its actual inputs ``x``."""
    exps = np.asarray(exps, np.int64)
    if layer.op == "Conv":
        o, cg, kh, kw = w.shape
        cols = conv_columns(np.asarray(x, np.float64), node_attrs, (kh, kw))
        q = np.empty(w.shape)
        e_out = exps.copy()
        og = o // layer.groups
        if per_channel:
            for gi in range(layer.groups):
                rows = slice(gi * og, (gi + 1) * og)
                xg = cols[gi * cg:(gi + 1) * cg].reshape(cg * kh * kw, -1)
                qg, e_out[rows] = round_rows(w[rows].reshape(og, -1), xg, exps[rows], bits)
                q[rows] = qg.reshape(og, cg, kh, kw)
            return q.astype(np.int8), e_out
        # One exponent for the layer: the choice has to be made across all groups together.
        best = None
        for d in (0, 1, -1):
            e = exps + d
            err = 0.0
            qd = np.empty(w.shape)
            for gi in range(layer.groups):
                rows = slice(gi * og, (gi + 1) * og)
                xg = cols[gi * cg:(gi + 1) * cg].reshape(cg * kh * kw, -1)
                h = _hessian(xg)
                wr = w[rows].reshape(og, -1).astype(np.float64)
                s = 2.0 ** e[rows].astype(np.float64)
                qg = _gptq(wr, h, s, bits)
                r = wr - qg * s[:, None]
                err += float(np.einsum("ij,jk,ik->", r, h, r))
                qd[rows] = qg.reshape(og, cg, kh, kw)
            if best is None or err < best[0]:
                best = (err, qd, e)
        return best[1].astype(np.int8), best[2]
    rows = np.moveaxis(w, layer.out_axis, 0)
    xf = np.asarray(x, np.float64).reshape(-1, rows.shape[1]).T
    q, e_out = round_rows(rows, xf, exps, bits, per_channel)
    return np.moveaxis(q, 0, layer.out_axis).astype(np.int8), e_out
