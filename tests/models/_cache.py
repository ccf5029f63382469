"""On-disk cache of built artifacts, keyed by name, VERSION, the generator sources and library versions."""

from __future__ import annotations

import functools
import hashlib
import os
import tempfile
from importlib import metadata
from pathlib import Path

import numpy as np

# Bump to invalidate every cached artifact; the key also holds a hash of the generator sources.
VERSION = 1


def cache_dir() -> Path:
    return Path(os.environ.get("MCUC_TEST_CACHE", "/tmp/mcuc-test-cache"))


# Their versions are part of the key: an upgrade may change the bytes they produce.
_LIBRARIES = ("numpy", "onnx", "onnxruntime", "scikit-learn", "torch")


@functools.cache
def _source_hash() -> str:
    h = hashlib.sha256()
    for lib in _LIBRARIES:
        try:
            h.update(f"{lib}={metadata.version(lib)};".encode())
        except metadata.PackageNotFoundError:
            h.update(f"{lib}=none;".encode())
    here = Path(__file__).parent
    for p in sorted(here.glob("*.py")):
        if not p.name.startswith("test_") and p.name != "__main__.py":
            h.update(p.name.encode())
            h.update(p.read_bytes())
    return h.hexdigest()[:12]


def _path(name: str) -> Path:
    return cache_dir() / f"{name}-v{VERSION}-{_source_hash()}.npz"


def load(name: str) -> dict[str, np.ndarray] | None:
    p = _path(name)
    if not p.exists():
        return None
    try:
        with np.load(p, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError):
        return None


def store(name: str, arrays: dict[str, np.ndarray]) -> None:
    """Write atomically so that parallel test workers never read half a file."""
    d = cache_dir()
    d.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=d, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, _path(name))
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def to_bytes_array(b: bytes) -> np.ndarray:
    return np.frombuffer(b, dtype=np.uint8)
