"""Exporter quirks: the torch-exported `quirks` net (Transpose pair around an NHWC Mul/Add,
ReduceMean(axes=[2,3], keepdims=1) as global average pool, Reshape whose shape is computed with
Shape/Gather/Unsqueeze/Concat), as a float entry and quantized by onnxruntime in QDQ."""

from __future__ import annotations

from ._ort import float_entry, qdq


def entries() -> dict:
    return {
        "float_quirks": lambda: float_entry("quirks"),
        "ort_qdq_quirks_s8": lambda: qdq("ort_qdq_quirks_s8", "quirks", "QInt8", "QInt8", True),
    }
