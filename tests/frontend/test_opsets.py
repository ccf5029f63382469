"""Every opset from 13 to the newest the installed onnx supports imports and means the same.

onnxruntime runs at most opset 26, so opsets beyond it are checked against the same model at
opset 17: converted with onnx's version converter, the interpreter must give identical outputs.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import version_converter

from compiler.frontend import MAX_OPSET
from compiler.ir import interpreter
from compiler.pipeline import compile_model

from ..ir.tiny_models import tiny_inputs, tiny_qdq_cnn


@pytest.mark.parametrize("opset", list(range(13, MAX_OPSET + 1)))
def test_opset_means_the_same(opset, tmp_path):
    base = tiny_qdq_cnn(opset=17)
    # The converter cannot lower Relu below opset 14; the tiny model's ops mean the same there.
    m = tiny_qdq_cnn(opset=opset) if opset <= 17 else version_converter.convert_version(base, opset)
    assert next(o.version for o in m.opset_import if o.domain in ("", "ai.onnx")) == opset
    p, q = tmp_path / "a.onnx", tmp_path / "b.onnx"
    onnx.save(base, p)
    onnx.save(m, q)
    x = tiny_inputs(32)
    a = interpreter.run(compile_model(p), {"x": x})["y"]
    b = interpreter.run(compile_model(q), {"x": x})["y"]
    assert np.array_equal(a, b)


def test_opset_beyond_support_is_a_clear_error(tmp_path):
    m = tiny_qdq_cnn(opset=17)
    m.opset_import[0].version = MAX_OPSET + 1
    p = tmp_path / "m.onnx"
    onnx.save(m, p)
    from compiler.errors import McucError

    with pytest.raises(McucError, match=f"opset {MAX_OPSET + 1} is not supported"):
        compile_model(p)
