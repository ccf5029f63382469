"""Integer element types of the IR.

Sub-byte types (int4, and the 1- and 2-bit types for binary / ternary layers) are stored one
value per element in numpy (int8 storage) inside the compiler; codegen packs them for flash.
"""

from __future__ import annotations

import enum

import numpy as np


class DType(enum.Enum):
    # name = (bits, signed, storage numpy dtype, C type of one unpacked element)
    INT1 = (1, True, "int8", "int8_t")  # binary {-1, +1}: bit 0 encodes -1
    INT2 = (2, True, "int8", "int8_t")  # ternary {-1, 0, +1}
    INT4 = (4, True, "int8", "int8_t")
    UINT4 = (4, False, "uint8", "uint8_t")
    INT8 = (8, True, "int8", "int8_t")
    UINT8 = (8, False, "uint8", "uint8_t")
    INT16 = (16, True, "int16", "int16_t")
    UINT16 = (16, False, "uint16", "uint16_t")
    INT32 = (32, True, "int32", "int32_t")
    INT64 = (64, True, "int64", "int64_t")  # shapes and indices only, never a compute type
    BOOL = (1, False, "bool", "bool")
    FLOAT32 = (32, True, "float32", "float")  # only before lowering and at graph boundaries

    @property
    def bits(self) -> int:
        return self.value[0]

    @property
    def signed(self) -> bool:
        return self.value[1]

    @property
    def np(self) -> np.dtype:
        return np.dtype(self.value[2])

    @property
    def ctype(self) -> str:
        return self.value[3]

    @property
    def is_float(self) -> bool:
        return self is DType.FLOAT32

    @property
    def is_int(self) -> bool:
        return not self.is_float and self is not DType.BOOL

    @property
    def qmin(self) -> int:
        if self is DType.INT1:
            return -1
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def qmax(self) -> int:
        if self is DType.INT1:
            return 1
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    @property
    def short(self) -> str:
        return {"FLOAT32": "f32", "BOOL": "bool"}.get(self.name, self.name.lower().replace("int", "i").replace("ui", "u"))

    def __repr__(self) -> str:
        return self.short

    @staticmethod
    def from_short(s: str) -> "DType":
        for d in DType:
            if d.short == s:
                return d
        raise KeyError(s)

    @staticmethod
    def for_range(bits: int, signed: bool) -> "DType":
        """Smallest storage type holding a `bits`-wide integer of the given signedness."""
        for d in (DType.INT4, DType.UINT4, DType.INT8, DType.UINT8, DType.INT16, DType.UINT16, DType.INT32):
            if d.signed == signed and d.bits >= bits:
                return d
        raise ValueError(f"no integer type for {bits} bits")


# ONNX TensorProto element types we meet, mapped to ours.
ONNX_TO_DTYPE = {
    1: DType.FLOAT32,
    2: DType.UINT8,
    3: DType.INT8,
    4: DType.UINT16,
    5: DType.INT16,
    6: DType.INT32,
    7: DType.INT64,
    9: DType.BOOL,
    21: DType.UINT4,
    22: DType.INT4,
    26: DType.INT2,  # opset 25; binary {-1, +1} weights arrive as INT2 and are narrowed to INT1 on import
}
DTYPE_TO_ONNX = {v: k for k, v in ONNX_TO_DTYPE.items()}
