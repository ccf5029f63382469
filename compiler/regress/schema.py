"""The regression baseline: one JSON file, checked by pydantic.

A baseline holds one record per (model, board): what the model's firmware computed and what it
cost when the baseline was recorded, and the tolerances a later run is held to. Outputs are
stored in full (the device's integers, little-endian, base64, zlib-compressed when that is
smaller) beside their SHA-256, so a mismatch can name the element that moved.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import tempfile
import zlib
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import McucError

FORMAT = "mcuc-regress/1"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Tolerances(_Model):
    """How far a metric may move before it counts as a regression. Relative tolerances are
    fractions of the baseline value (0.01 = 1%); byte tolerances are absolute; output
    tolerances are in the output's integer steps (0: bit-exact)."""

    instructions_rel: float = Field(default=0.01, ge=0)
    cycles_rel: float = Field(default=0.01, ge=0)
    layer_cycles_rel: float = Field(default=0.01, ge=0)
    arena_bytes: int = Field(default=0, ge=0)
    flash_bytes: int = Field(default=0, ge=0)
    output_steps: int = Field(default=0, ge=0)


class CompileOptions(_Model):
    """How the model was compiled (as ``mcuc compile``'s options): a later run reuses them."""

    input_shapes: dict[str, list[int]] = {}
    rounding: Literal["auto", "onnx", "tflite"] = "auto"
    scale_policy: Literal["exact", "pow2"] = "exact"

    def compile(self, model):
        from ..pipeline import compile_model

        return compile_model(model, input_shapes=self.input_shapes or None, convention=self.rounding,
                             scale_policy=self.scale_policy)


class OutputData(_Model):
    dtype: str
    shape: list[int]
    sha256: str
    encoding: Literal["base64", "zlib+base64"]
    data: str

    @classmethod
    def of(cls, a: np.ndarray) -> OutputData:
        a = np.ascontiguousarray(a)
        raw = a.astype(a.dtype.newbyteorder("<")).tobytes()
        packed = zlib.compress(raw, 9)
        enc, body = ("zlib+base64", packed) if len(packed) < len(raw) else ("base64", raw)
        return cls(dtype=a.dtype.name, shape=list(a.shape), sha256=hashlib.sha256(raw).hexdigest(), encoding=enc,
                   data=base64.b64encode(body).decode())

    def array(self) -> np.ndarray:
        body = base64.b64decode(self.data)
        raw = zlib.decompress(body) if self.encoding == "zlib+base64" else body
        return np.frombuffer(raw, dtype=np.dtype(self.dtype).newbyteorder("<")).astype(self.dtype).reshape(self.shape)


class LayerRecord(_Model):
    name: str
    op: str
    macs: int = 0
    instructions: int | None = None
    cycles: int | None = None  # estimated by the board's cycle model


class Record(_Model):
    model: str  # the model's name (file stem): the record's key with the board
    path: str | None = None  # the model file, relative to the baseline file when below it
    model_sha256: str
    inputs: str  # where the inputs came from: "file:<path>" or "random:seed=<n>,samples=<n>"
    inputs_sha256: str
    board: str  # vendor/name
    options: CompileOptions = CompileOptions()
    simulator: str  # qemu, unicorn, renode or host
    toolchain: str | None = None
    cycle_model: str | None = None
    samples: int
    outputs: dict[str, OutputData]  # device integers by graph output name
    interpreter_exact: bool  # outputs equal to the reference interpreter's when recorded
    instructions: int | None = None  # per inference; None on the host
    cycles: int | None = None  # per inference, estimated; None on the host
    arena_bytes: int
    flash_bytes: int | None = None
    weights_bytes: int | None = None
    layers: list[LayerRecord] = []
    tolerances: Tolerances | None = None  # overrides the baseline's for this record

    @property
    def key(self) -> str:
        return record_key(self.model, self.board)


class Recorded(_Model):
    """Who recorded the baseline: the versions a later difference may come from."""

    mcuc: str
    python: str
    date: str
    toolchains: list[str] = []
    simulators: dict[str, str] = {}


class Baseline(_Model):
    format: Literal["mcuc-regress/1"] = FORMAT
    recorded: Recorded | None = None
    tolerances: Tolerances = Tolerances()
    records: dict[str, Record] = {}

    def tolerances_for(self, key: str) -> Tolerances:
        r = self.records.get(key)
        return r.tolerances if r is not None and r.tolerances is not None else self.tolerances


def record_key(model: str, board: str) -> str:
    return f"{model}@{board}"


def load(path, *, missing_ok: bool = False) -> Baseline:
    path = Path(path)
    if not path.exists():
        if missing_ok:
            return Baseline()
        raise McucError("no such baseline (record one with --update)", where=str(path))
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise McucError(f"not a baseline: {e}", where=str(path)) from None
    try:
        return Baseline.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(x) for x in err["loc"])
        raise McucError(f"not a valid baseline: {loc}: {err['msg']}", where=str(path)) from None


def save(baseline: Baseline, path) -> None:
    """Write atomically (a temporary file renamed over the target): never half a baseline."""
    path = Path(path)
    text = json.dumps(baseline.model_dump(mode="json", exclude_none=False), indent=1, sort_keys=False) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
