"""Constant data as C: packing sub-byte values and formatting ``static const`` arrays."""

from __future__ import annotations

import numpy as np

from ..ir.dtypes import DType

# Sub-byte element types packed 8/bits to a byte, element i in bits [(i % k) * bits, ...) of
# byte i // k (low bits first, as ONNX packs int4). The kernel-side loader of each lives in
# runtime_c/include/mcuc_pack.h under the name given here.
PACKED = {
    DType.INT4: "mcuc_ld_s4",
    DType.UINT4: "mcuc_ld_u4",
    DType.INT2: "mcuc_ld_s2",
    DType.INT1: "mcuc_ld_s1",
}

SUFFIX = {
    DType.INT1: "s1", DType.INT2: "s2", DType.INT4: "s4", DType.UINT4: "u4", DType.INT8: "s8", DType.UINT8: "u8",
    DType.INT16: "s16", DType.UINT16: "u16", DType.INT32: "s32", DType.INT64: "s64",
}


def is_packed(dt: DType) -> bool:
    return dt in PACKED


def loader(dt: DType) -> str:
    """Name of the C function reading element i of a weight array of this type."""
    return PACKED.get(dt, f"mcuc_ld_{SUFFIX[dt]}")


def storage_ctype(dt: DType) -> str:
    return "uint8_t" if is_packed(dt) else dt.ctype


def pack(values: np.ndarray, dt: DType) -> np.ndarray:
    """Flattened ``values`` of a sub-byte type packed into bytes (see PACKED)."""
    v = np.asarray(values).reshape(-1).astype(np.int64)
    if dt is DType.INT1:
        if v.size and not np.all((v == 1) | (v == -1)):
            raise ValueError("int1 values must be -1 or +1")
        codes = (v > 0).astype(np.int64)
    else:
        codes = v & ((1 << dt.bits) - 1)
    per = 8 // dt.bits
    pad = (-codes.size) % per
    codes = np.concatenate([codes, np.zeros(pad, np.int64)]).reshape(-1, per)
    shifts = np.arange(per, dtype=np.int64) * dt.bits
    return (codes << shifts).sum(axis=1).astype(np.uint8)


def unpack(data: np.ndarray, dt: DType, n: int) -> np.ndarray:
    """Inverse of ``pack`` (for tests)."""
    per = 8 // dt.bits
    b = np.asarray(data, np.int64).reshape(-1, 1)
    codes = ((b >> (np.arange(per) * dt.bits)) & ((1 << dt.bits) - 1)).reshape(-1)[:n]
    if dt is DType.INT1:
        return np.where(codes == 1, 1, -1)
    if dt.signed:
        return np.where(codes >= (1 << (dt.bits - 1)), codes - (1 << dt.bits), codes)
    return codes


def c_int(v: int, ctype: str) -> str:
    v = int(v)
    if ctype in ("int32_t",) and v == -(1 << 31):
        return "(-2147483647 - 1)"
    if ctype == "int64_t":
        return f"INT64_C({v})"
    if ctype in ("uint32_t",):
        return f"{v}u"
    return str(v)


def c_array(name: str, ctype: str, values: np.ndarray, *, per_line: int = 16, static: bool = True) -> str:
    """``static const <ctype> name[n] = {...};`` (n >= 1: C forbids empty arrays)."""
    flat = np.asarray(values).reshape(-1)
    items = [c_int(x, ctype) for x in flat.tolist()] or ["0"]
    lines = []
    for i in range(0, len(items), per_line):
        lines.append("    " + ", ".join(items[i:i + per_line]) + ",")
    prefix = "static const" if static else "const"
    return f"{prefix} {ctype} {name}[{len(items)}] = {{\n" + "\n".join(lines) + "\n};\n"


def c_float(x: float) -> str:
    """A float literal that reads back to the same float32."""
    f = np.float32(x)
    if not np.isfinite(f):
        raise ValueError(f"non-finite float {x}")
    return np.format_float_scientific(f, unique=True, trim="0") + "f"
