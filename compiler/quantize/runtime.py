"""Running float and QDQ models on the calibration data with onnxruntime.

onnxruntime (graph optimizations off, one thread: the order of float sums is then fixed) is the
fast way to evaluate candidate models; mcuc's interpreter is the bit-exact check afterwards.
Intermediate tensors are read by adding them as graph outputs.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper

from ..errors import McucError


def _ort():
    try:
        import onnxruntime
    except ImportError:
        raise McucError("mcuc quantize evaluates models with onnxruntime, which is not installed "
                        "(pip install onnxruntime)") from None
    return onnxruntime


def run(model: onnx.ModelProto, x: np.ndarray, tensors: list[str] = ()) -> dict[str, np.ndarray]:
    """The graph outputs and the float tensors ``tensors`` on the samples ``x`` (N on axis 0)."""
    ort = _ort()
    m = onnx.ModelProto()
    m.CopyFrom(model)
    have = {o.name for o in m.graph.output}
    for t in tensors:
        if t not in have:
            m.graph.output.append(helper.make_tensor_value_info(t, TensorProto.FLOAT, None))
            have.add(t)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    try:
        sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001  (onnxruntime's own exception types, not importable portably)
        raise McucError(f"onnxruntime cannot load the model: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    name = sess.get_inputs()[0].name
    names = [o.name for o in sess.get_outputs()]
    dim0 = sess.get_inputs()[0].shape[0] if sess.get_inputs()[0].shape else None
    if dim0 == 1 and len(x) > 1:
        parts = [sess.run(None, {name: x[i:i + 1]}) for i in range(len(x))]
        outs = [np.concatenate([p[j] for p in parts]) for j in range(len(names))]
    else:
        outs = sess.run(None, {name: x})
    return dict(zip(names, outs))
