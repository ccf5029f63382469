"""Models written to disk for ``mcuc regress`` tests (the CLI takes .onnx files)."""

from __future__ import annotations

import numpy as np
import pytest

import tests.models as zoo


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("regress-models")
    digits = zoo.build("ort_qdq_cnn_s8_pc")
    (d / "digits.onnx").write_bytes(digits.model.SerializeToString())
    # digits reads its inputs from the file beside it; mlp gets random ones seeded by its hash.
    np.save(d / "digits.npy", np.asarray(digits.inputs)[:4])
    (d / "mlp.onnx").write_bytes(zoo.build("ort_qdq_mlp_s8").model.SerializeToString())
    return d
