"""Quantization parameters of tensors and requantization parameters of operations."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import rounding


def _fmt_float(x: float) -> str:
    e = rounding.pow2_exponent(float(x))
    return f"2^{e}" if e is not None else f"{float(x):.9g}"


@dataclass(eq=False)
class QParams:
    """real = (q - zero_point) * scale; per tensor (axis None) or per channel along ``axis``.

    Scales are kept as float64 holding the model's float32 values exactly; a scale that is a
    power of two is reported by ``exponents`` and printed as ``2^k``.
    """

    scale: np.ndarray
    zero_point: np.ndarray
    axis: int | None = None

    def __post_init__(self):
        self.scale = np.asarray(self.scale, dtype=np.float64)
        self.zero_point = np.asarray(self.zero_point, dtype=np.int64)
        if self.axis is None:
            self.scale = self.scale.reshape(())
            self.zero_point = self.zero_point.reshape(())
        else:
            self.scale = self.scale.reshape(-1)
            self.zero_point = np.broadcast_to(self.zero_point.reshape(-1), self.scale.shape).copy()

    @property
    def per_channel(self) -> bool:
        return self.axis is not None

    @property
    def exponents(self) -> np.ndarray | None:
        """Integer exponents k with scale == 2^k, or None if any scale is not a power of two."""
        ks = [rounding.pow2_exponent(float(s)) for s in self.scale.reshape(-1)]
        if any(k is None for k in ks):
            return None
        return np.array(ks, dtype=np.int64).reshape(self.scale.shape)

    def scalar_scale(self) -> float:
        if self.per_channel:
            raise ValueError("per-channel quantization has no single scale")
        return float(self.scale)

    def scalar_zp(self) -> int:
        if self.per_channel:
            if np.all(self.zero_point == self.zero_point.reshape(-1)[0]):
                return int(self.zero_point.reshape(-1)[0])
            raise ValueError("per-channel zero points differ")
        return int(self.zero_point)

    def __eq__(self, other) -> bool:
        return (
            isinstance(other, QParams)
            and self.axis == other.axis
            and self.scale.shape == other.scale.shape
            and np.array_equal(self.scale, other.scale)
            and np.array_equal(self.zero_point, other.zero_point)
        )

    def __hash__(self):
        return hash((self.axis, self.scale.tobytes(), self.zero_point.tobytes()))

    def text(self) -> str:
        if not self.per_channel:
            return f"q[s={_fmt_float(self.scale)} zp={int(self.zero_point)}]"
        zps = self.zero_point
        zp = str(int(zps[0])) if np.all(zps == zps[0]) else "[" + ",".join(str(int(z)) for z in zps) + "]"
        ss = ",".join(_fmt_float(s) for s in self.scale)
        return f"q[axis={self.axis} s=[{ss}] zp={zp}]"


@dataclass(eq=False)
class Requant:
    """How int32 accumulators are scaled to the output grid (see rounding.py for the rules).

    ``dyadic``: ratio = multiplier * 2^(shift - 31), TFLite double rounding.
    ``single``: the same ratio, rounded once (CMSIS-NN single rounding).
    ``shift``:  ratio = 2^-shift, round half to even (shift <= 0 is an exact left shift).
    Arrays are per output channel or 0-d.
    """

    kind: str
    multiplier: np.ndarray
    shift: np.ndarray

    def __post_init__(self):
        self.multiplier = np.asarray(self.multiplier, dtype=np.int64)
        self.shift = np.asarray(self.shift, dtype=np.int64)
        if self.kind not in ("dyadic", "single", "shift"):
            raise ValueError(f"unknown requant kind {self.kind}")

    @staticmethod
    def from_ratio(ratio, allow_shift: bool, single: bool = False) -> "Requant":
        """Requantization for real ratio(s): a pure shift where every ratio is 2^k and that is
        allowed, else a multiplier rounded twice (TFLite) or, with ``single``, once."""
        r = np.asarray(ratio, dtype=np.float64)
        flat = r.reshape(-1)
        if allow_shift:
            ks = [rounding.pow2_exponent(float(x)) for x in flat]
            if all(k is not None for k in ks):
                return Requant("shift", np.ones(r.shape, np.int64), -np.array(ks, np.int64).reshape(r.shape))
        pairs = [rounding.quantize_multiplier(float(x)) for x in flat]
        m = np.array([p[0] for p in pairs], np.int64).reshape(r.shape)
        s = np.array([p[1] for p in pairs], np.int64).reshape(r.shape)
        return Requant("single" if single else "dyadic", m, s)

    @property
    def per_channel(self) -> bool:
        return self.shift.ndim > 0

    def apply(self, acc, channel_axis: int | None = None) -> np.ndarray:
        """Scale ``acc`` (int) by this requantization; per-channel values broadcast on ``channel_axis``."""
        m, s = self.multiplier, self.shift
        if self.per_channel:
            shape = [1] * np.ndim(acc)
            shape[channel_axis] = -1
            m, s = m.reshape(shape), s.reshape(shape)
        return rounding.requantize(acc, self.kind, m, s)

    def ratio(self) -> np.ndarray:
        if self.kind == "shift":
            return np.ldexp(1.0, -self.shift)
        return self.multiplier * np.ldexp(1.0, self.shift - 31)

    def __eq__(self, other) -> bool:
        return (
            isinstance(other, Requant)
            and self.kind == other.kind
            and np.array_equal(self.multiplier, other.multiplier)
            and np.array_equal(self.shift, other.shift)
        )

    def text(self) -> str:
        def arr(a):
            a = np.asarray(a)
            return str(int(a)) if a.ndim == 0 else "[" + ",".join(str(int(v)) for v in a.reshape(-1)) + "]"

        if self.kind == "shift":
            return f"shift({arr(self.shift)})"
        return f"{self.kind}(m={arr(self.multiplier)} s={arr(self.shift)})"
