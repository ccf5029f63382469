"""Calibration data: load it and reject what would calibrate badly, with one-line errors.

Every check here guards a specific way post-training quantization goes wrong silently: a NaN
or infinity poisons min/max and MSE statistics; a constant input has no range to calibrate;
a handful of samples gives ranges that the test data exceeds. The error names the file, what is
wrong and what is expected.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import McucError

# Fewer samples than this give activation ranges that say little about unseen inputs; 8 is the
# floor (about one batch), a few hundred is what the documentation recommends.
MIN_SAMPLES = 8


def load_calibration(path: str | Path) -> np.ndarray:
    p = Path(path)
    if not p.is_file():
        raise McucError(f"calibration data {p}: no such file")
    try:
        arr = np.load(p, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:  # a bad header, a pickle, a truncated file
        raise McucError(f"calibration data {p}: not a readable .npy file ({type(e).__name__})") from None
    if isinstance(arr, np.lib.npyio.NpzFile):
        raise McucError(f"calibration data {p}: expected one array in a .npy file, got an .npz archive")
    return arr


def check_calibration(x: np.ndarray, input_name: str, input_shape: list, *, where: str = "calibration data") -> np.ndarray:
    """The samples as float32 (N, ...) matching ``input_shape`` (its first dimension is the batch).

    ``input_shape`` holds ints for fixed dimensions and None for symbolic ones.
    """
    if not isinstance(x, np.ndarray) or x.dtype.kind not in "f":
        kind = x.dtype if isinstance(x, np.ndarray) else type(x).__name__
        raise McucError(f"{where}: dtype {kind} is not supported; input {input_name!r} is float, "
                        "give float32 (or float16/float64) samples")
    rank = len(input_shape)
    want = "(N, " + ", ".join("?" if d is None else str(d) for d in input_shape[1:]) + ")"
    if x.ndim != rank:
        raise McucError(f"{where}: shape {tuple(x.shape)} has rank {x.ndim}, input {input_name!r} needs "
                        f"rank {rank}: {want} with N samples on axis 0")
    for i, (have, need) in enumerate(zip(x.shape[1:], input_shape[1:]), start=1):
        if need is not None and have != need:
            raise McucError(f"{where}: shape {tuple(x.shape)} does not match input {input_name!r} {want} "
                            f"(dimension {i} is {have}, expected {need})")
    n = x.shape[0]
    if n < MIN_SAMPLES:
        raise McucError(f"{where}: {n} sample(s); at least {MIN_SAMPLES} are needed (a few hundred are recommended)")
    bad = ~np.isfinite(x)
    if bad.any():
        rows = int(bad.reshape(n, -1).any(axis=1).sum())
        raise McucError(f"{where}: {int(bad.sum())} NaN or infinite value(s) in {rows} of {n} samples")
    x = x.astype(np.float32)
    if float(x.max()) == float(x.min()):
        raise McucError(f"{where}: every value is {float(x.min()):g}; constant inputs have no range to calibrate on")
    flat = x.reshape(n, -1)
    if np.all(flat == flat[:1]):
        raise McucError(f"{where}: all {n} samples are identical; calibration needs varied inputs")
    return x
