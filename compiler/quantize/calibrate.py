"""Power-of-two exponents: per-tensor for activations (three calibrators), per-channel for weights.

A scale is always 2^e. The calibrators differ only in which e they pick for an activation:

- ``minmax``: the smallest e whose integer range covers every calibration value (no clipping);
- ``percentile``: the same for the given percentile of |x| (clips the rare outliers);
- ``mse``: starting at the minmax exponent, try it and the next four smaller ones (each halves the
  step and the range) and keep the one whose quantize-dequantize error on the calibration values
  is least. Halving the step trades rounding error on every value against clipping error on the
  few largest; the data decides.

Weights always use the MSE search per output channel (it needs no data); that is what keeps
depthwise layers accurate when one channel's weights are ten times another's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# MSE candidates below the covering exponent: 2^-4 of the range is as far as clipping ever pays.
MSE_STEPS = 4
# Statistics on at most this many values per tensor (a fixed stride, so results are reproducible).
MAX_VALUES = 1 << 20


@dataclass(frozen=True)
class ActQ:
    """Quantization of one activation tensor: scale 2^exp, stored as dtype with zero point zp.
    ``bits`` 16 is TFLite's 16x8 scheme: int16, symmetric, zero point 0 (always signed)."""

    exp: int
    signed: bool
    zp: int = 0
    bits: int = 8

    @property
    def scale(self) -> float:
        return float(2.0 ** self.exp)

    @property
    def qmin(self) -> int:
        if self.bits == 16:
            return -32768
        return -128 if self.signed else 0

    @property
    def qmax(self) -> int:
        if self.bits == 16:
            return 32767
        return 127 if self.signed else 255

    @property
    def np_dtype(self):
        if self.bits == 16:
            return np.int16
        return np.int8 if self.signed else np.uint8

    def text(self) -> str:
        zp = f" zp={self.zp}" if self.zp else ""
        kind = "i16" if self.bits == 16 else ("i8" if self.signed else "u8")
        return f"{kind} 2^{self.exp}{zp}"


def fake_quant(x: np.ndarray, scale, zp, qmin: int, qmax: int) -> np.ndarray:
    """Quantize (round half to even, saturate) then dequantize, as a QuantizeLinear/DequantizeLinear pair."""
    return (np.clip(np.rint(x / scale) + zp, qmin, qmax) - zp) * scale


def _sample(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64).reshape(-1)
    if x.size > MAX_VALUES:
        x = x[:: -(-x.size // MAX_VALUES)]
    return x


def _covering_exp(span: float, levels: int) -> int:
    """Smallest e with span / 2^e <= levels."""
    if span <= 0:
        return -7  # an all-zero tensor is exact at any exponent; 2^-7 suits values in [-1, 1]
    e = int(np.ceil(np.log2(span / levels)))
    # Guard the float log against landing one short.
    while span / 2.0 ** e > levels:
        e += 1
    return e


def activation_qparams(x: np.ndarray, *, calibrator: str, asymmetric: bool, can_be_negative: bool,
                       percentile: float = 99.99, bits: int = 8) -> ActQ:
    """The exponent (and zero point, if asymmetric) for one activation tensor's calibration values.
    With ``bits`` 16 the tensor is int16, symmetric and signed whatever ``asymmetric`` and the
    sign say (TFLite's 16x8 scheme: kernels then need no zero point and no unsigned variant)."""
    v = _sample(x)
    lo, hi = min(float(v.min()), 0.0), max(float(v.max()), 0.0)
    if calibrator == "percentile":
        lo = min(float(np.percentile(v, 100.0 - percentile)), 0.0) if lo < 0 else 0.0
        hi = max(float(np.percentile(v, percentile)), 0.0)
    if bits == 16:
        e0 = _covering_exp(max(hi, -lo), 32767)
        if calibrator != "mse":
            return ActQ(e0, True, 0, 16)
        errs = [(float(np.mean((fake_quant(v, 2.0 ** e, 0, -32768, 32767) - v) ** 2)), -e)
                for e in range(e0, e0 - MSE_STEPS - 1, -1)]
        return ActQ(-min(errs)[1], True, 0, 16)
    if asymmetric:
        # int8 with a zero point: the range [lo, hi] (including 0) over 255 steps.
        e0 = _covering_exp(hi - lo, 255)

        def zp_low(e):  # lo on the lowest code
            return int(np.clip(np.rint(-128 - lo / 2.0 ** e), -128, 127))

        if calibrator != "mse":
            return ActQ(e0, True, zp_low(e0))
        best = None
        for e in range(e0, e0 - MSE_STEPS - 1, -1):
            s = 2.0 ** e
            zp_high = int(np.clip(np.rint(127 - hi / s), -128, 127))
            zp_mid = int(np.clip(np.rint(-0.5 - (lo + hi) / (2 * s)), -128, 127))
            for zp in sorted({zp_low(e), zp_high, zp_mid}):
                err = float(np.mean((fake_quant(v, s, zp, -128, 127) - v) ** 2))
                if best is None or err < best[0]:
                    best = (err, ActQ(e, True, zp))
        return best[1]
    # Symmetric: zero point 0, and unsigned storage when the tensor cannot be negative (after a
    # Relu, or an input whose calibration data is never negative): twice the resolution.
    signed = bool(lo < 0 or can_be_negative)
    levels = 127 if signed else 255
    e0 = _covering_exp(max(hi, -lo), levels)
    if calibrator != "mse":
        return ActQ(e0, signed)
    qmin, qmax = (-128, 127) if signed else (0, 255)
    errs = [(float(np.mean((fake_quant(v, 2.0 ** e, 0, qmin, qmax) - v) ** 2)), -e)
            for e in range(e0, e0 - MSE_STEPS - 1, -1)]
    return ActQ(-min(errs)[1], signed)


def weight_range(bits: int) -> tuple[int, int]:
    """Integer range of ``bits``-bit weights. 2 bits is ternary {-1, 0, +1} (TWN: the -2 code
    would make the grid asymmetric for one value); 1 bit is binary {-1, +1} (no zero)."""
    if bits == 2:
        return -1, 1
    if bits == 1:
        return -1, 1
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def round_to_grid(v: np.ndarray, bits: int) -> np.ndarray:
    """Nearest level of the ``bits``-bit grid for values already divided by the step: round and
    clip, or for binary the sign (0 goes to +1, as QONNX BipolarQuant does)."""
    if bits == 1:
        return np.where(v >= 0, 1.0, -1.0)
    qmin, qmax = weight_range(bits)
    return np.clip(np.rint(v), qmin, qmax)


# Exponents tried around the covering one (the smallest 2^e holding max|w| in qmax steps). With
# few levels the least-error step lies further below it: for ternary weights TWN's threshold
# 0.7 mean|w| puts the step near mean|w|, for binary the best scale is mean|w| (BWN / XNOR-Net).
_EXP_OFFSETS = {1: (1, 0, -1, -2, -3, -4, -5), 2: (1, 0, -1, -2, -3, -4)}


def quantize_weights(w: np.ndarray, out_axis: int, bits: int, per_channel: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Power-of-two weight quantization: (integer weights, exponent per output channel).

    Each channel (or, per tensor, the whole tensor) tries the exponent that covers its largest
    |w| with 2^(bits-1) - 1 levels, one above and two below (down to five below for ternary and
    binary), and keeps the least squared error (the -2^(bits-1) code is used when rounding
    reaches it). Per tensor, every channel gets the same exponent: the layer then requantizes
    with one shift instead of an array of them. Ternary and binary weights are thus TWN / BWN
    with the per-channel scale alpha restricted to a power of two.
    """
    _, qmax = weight_range(bits)
    wc = np.moveaxis(np.asarray(w, np.float64), out_axis, 0)
    flat = wc.reshape(wc.shape[0], -1)
    groups = flat if per_channel else flat.reshape(1, -1)
    amax = np.abs(groups).max(axis=1)
    e0 = np.array([_covering_exp(a, qmax) for a in amax])
    best_err = np.full(len(groups), np.inf)
    best_e = e0.copy()
    for d in _EXP_OFFSETS.get(bits, (1, 0, -1, -2)):
        e = e0 + d
        s = (2.0 ** e)[:, None]
        err = ((round_to_grid(groups / s, bits) * s - groups) ** 2).sum(axis=1)
        better = err < best_err
        best_err = np.where(better, err, best_err)
        best_e = np.where(better, e, best_e)
    exps = best_e if per_channel else np.full(len(flat), best_e[0])
    return integer_weights(w, out_axis, exps, bits), exps.astype(np.int64)


def integer_weights(w: np.ndarray, out_axis: int, exps: np.ndarray, bits: int) -> np.ndarray:
    shape = [1] * w.ndim
    shape[out_axis] = -1
    s = (2.0 ** np.asarray(exps, np.float64)).reshape(shape)
    return round_to_grid(np.asarray(w, np.float64) / s, bits).astype(np.int8)
