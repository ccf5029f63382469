"""Test model zoo for mcuc: small quantized ONNX models built in code, deterministic to the byte.

`build(name)` returns a ZooModel, cached in process and on disk (MCUC_TEST_CACHE, default
/tmp/mcuc-test-cache). `ZOO` maps names to uncached factories; `BAD` maps names to factories of
invalid model files and `BAD_ERRORS` to the phrases the compiler's error must contain.
"""

from __future__ import annotations

import functools
import json
from typing import Callable

import numpy as np
import onnx

from . import _bad, _cache, _handmade, _ort, _qonnx, _quirks, _torch_ao
from ._cache import VERSION, cache_dir
from ._common import ZooModel, accuracy, all_scales_pow2, digits_split, run_ort
from ._qonnx import qonnx_reference, qonnx_to_qdq

__all__ = [
    "BAD", "BAD_ERRORS", "VERSION", "ZOO", "ZooModel", "accuracy", "all_scales_pow2", "build", "cache_dir",
    "digits_split", "qonnx_reference", "qonnx_to_qdq", "reference_outputs", "run_ort",
]

ZOO: dict[str, Callable[[], ZooModel]] = {
    **_ort.entries(),
    **_handmade.entries(),
    **_qonnx.entries(),
    **_torch_ao.entries(),
    **_quirks.entries(),
}

BAD: dict[str, Callable[[], bytes]] = _bad.BAD
BAD_ERRORS: dict[str, tuple[str, ...]] = _bad.BAD_ERRORS


def _to_arrays(z: ZooModel) -> dict[str, np.ndarray]:
    meta = {"name": z.name, "family": z.family, "pow2": z.pow2, "tvm_reason": z.tvm_reason, "source": z.source,
            "dict_inputs": isinstance(z.inputs, dict)}
    arrays = {"model": _cache.to_bytes_array(z.model.SerializeToString()), "meta": np.array(json.dumps(meta))}
    if isinstance(z.inputs, dict):
        arrays.update({f"input:{k}": v for k, v in z.inputs.items()})
    else:
        arrays["input"] = z.inputs
    if z.labels is not None:
        arrays["labels"] = z.labels
    return arrays


def _from_arrays(a: dict[str, np.ndarray]) -> ZooModel:
    meta = json.loads(str(a["meta"]))
    for v in a.values():
        v.setflags(write=False)
    inputs = ({k[len("input:"):]: v for k, v in a.items() if k.startswith("input:")}
              if meta["dict_inputs"] else a["input"])
    return ZooModel(name=meta["name"], model=onnx.load_from_string(a["model"].tobytes()), inputs=inputs,
                    labels=a.get("labels"), family=meta["family"], pow2=meta["pow2"],
                    tvm_reason=meta["tvm_reason"], source=meta["source"])


@functools.cache
def build(name: str) -> ZooModel:
    """The zoo entry `name`, from the in-process cache, else the disk cache, else built.

    The same object is returned to every caller: copy the model before changing it."""
    if name not in ZOO:
        raise KeyError(f"no zoo model {name!r}")
    hit = _cache.load(name)
    if hit is not None:
        return _from_arrays(hit)
    z = ZOO[name]()
    _cache.store(name, _to_arrays(z))
    return z


def reference_outputs(z: ZooModel) -> list[np.ndarray]:
    """Expected outputs: onnxruntime, or the QONNX reference for graphs ORT cannot run."""
    if z.family in ("qonnx", "qonnx_bipolar"):
        return qonnx_reference(z.model, z.inputs)
    return run_ort(z.model, z.inputs)
