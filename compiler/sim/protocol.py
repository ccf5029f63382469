"""The harness's output stream, shared by every way of running a generated project.

Each sample's outputs follow one another in manifest order, little-endian, as the harness
writes them (to a file on the host, as hex lines on a board's UART).
"""

from __future__ import annotations

import numpy as np

from ..errors import McucError
from ..ir.dtypes import DType


def decode_outputs(man: dict, data: bytes, n: int, who: str) -> dict[str, np.ndarray]:
    """N samples' output bytes -> arrays by graph output name, samples stacked on axis 0."""
    per = []
    for t in man["outputs"]:
        dt = DType[t["dtype"].upper()]
        per.append((t, dt.np.newbyteorder("<"), int(np.prod(t["shape"], dtype=np.int64)) if t["shape"] else 1))
    sample_bytes = sum(cnt * np.dtype(d).itemsize for _, d, cnt in per)
    if len(data) != n * sample_bytes:
        raise McucError(f"{who} sent {len(data)} output bytes, expected {n * sample_bytes}")
    chunks: dict[str, list[np.ndarray]] = {t["graph_name"]: [] for t, _, _ in per}
    pos = 0
    for _ in range(n):
        for t, d, cnt in per:
            nb = cnt * np.dtype(d).itemsize
            chunks[t["graph_name"]].append(np.frombuffer(data[pos:pos + nb], dtype=d))
            pos += nb
    outputs = {}
    for t, d, _ in per:
        shape = tuple(t["shape"])
        arr = np.concatenate(chunks[t["graph_name"]]) if n else np.zeros(0, d)
        outputs[t["graph_name"]] = arr.astype(np.dtype(d).newbyteorder("=")).reshape((-1,) + shape[1:] if shape else (-1,))
    return outputs
