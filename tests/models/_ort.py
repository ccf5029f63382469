"""onnxruntime.quantization.quantize_static on the float digits nets, in QDQ and QOperator formats.

Calibration: MinMax over the first 100 training images. quantize_static mutates a ModelProto
passed to it (it moves initializers to external data), so it always gets a copy.

int4: ORT 1.31 quantizes weights to native INT4 QuantizeLinear/DequantizeLinear when the model is
already at opset 21 (below 21 it would emit com.microsoft Q/DQ instead), so the float net is first
converted with onnx.version_converter.

Opsets: onnx.version_converter has no Relu adapter down from 14, so the opset-13 model is the
float net with its opset import set to 13 (its ops, Conv/Relu/Flatten/Gemm, mean the same there).
onnx 1.23 knows opset 28 but onnxruntime 1.31 loads at most opset 26, so 26 is the newest here.
"""

from __future__ import annotations

import logging
import os
import tempfile

import onnx
from onnx import version_converter

from ._common import ZooModel, all_scales_pow2, calibration_images, digits_split, finalize
from ._float import net_input, trained

NEWEST_ORT_OPSET = 26

# What apache-tvm 0.27's Relax ONNX frontend does with each family (checked by test_zoo when tvm is installed).
TVM_QOP = ("QOperator: the Relax ONNX frontend implements neither QLinearConv/QLinearMatMul "
           "nor com.microsoft QLinear*/QGemm")
TVM_INT4 = "int4 initializers: the Relax ONNX frontend fails to copy packed INT4 tensors (size mismatch)"


def _reader(x):
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._it = iter([{"input": x}])

        def get_next(self):
            return next(self._it, None)

    return Reader()


def quantize(model: onnx.ModelProto, net: str, fmt: str = "QDQ", act: str = "QInt8", weight: str = "QInt8",
             per_channel: bool = False, **kw) -> onnx.ModelProto:
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    # quantize_static logs a root-logger warning recommending pre-processing on every call.
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "q.onnx")
            quantize_static(onnx.ModelProto.FromString(model.SerializeToString()), out,
                            _reader(net_input(net, calibration_images())),
                            quant_format=QuantFormat[fmt], activation_type=QuantType[act],
                            weight_type=QuantType[weight], per_channel=per_channel, **kw)
            q = onnx.load(out)
    finally:
        logging.disable(previous)
    return finalize(q, producer="onnx.quantize", producer_version="0.1.0")


def _entry(name, net, model, family, tvm_reason=None) -> ZooModel:
    _, _, x_te, y_te = digits_split()
    return ZooModel(name=name, model=model, inputs=net_input(net, x_te), labels=y_te, family=family,
                    pow2=all_scales_pow2(model), tvm_reason=tvm_reason, source=f"float_{net}")


def float_entry(net: str) -> ZooModel:
    return _entry(f"float_{net}", net, trained(net)[0], "float")


def qdq(name: str, net: str, act: str, weight: str, per_channel: bool) -> ZooModel:
    return _entry(name, net, quantize(trained(net)[0], net, "QDQ", act, weight, per_channel), "ort_qdq")


def qop(name: str, net: str, act: str, weight: str) -> ZooModel:
    return _entry(name, net, quantize(trained(net)[0], net, "QOperator", act, weight), "ort_qop", TVM_QOP)


def qdq_int4() -> ZooModel:
    m21 = version_converter.convert_version(trained("cnn")[0], 21)
    return _entry("ort_qdq_cnn_int4", "cnn", quantize(m21, "cnn", "QDQ", "QInt8", "QInt4", True),
                  "ort_qdq", TVM_INT4)


def qdq_opset(opset: int) -> ZooModel:
    m = onnx.ModelProto.FromString(trained("cnn")[0].SerializeToString())
    if opset < 17:
        m.opset_import[0].version = opset
        onnx.checker.check_model(m, full_check=True)
    else:
        m = version_converter.convert_version(m, opset)
    return _entry(f"ort_qdq_cnn_op{opset}", "cnn", quantize(m, "cnn", "QDQ", "QInt8", "QInt8", True), "ort_qdq")


def entries() -> dict:
    z = {f"float_{n}": (lambda n=n: float_entry(n)) for n in ("cnn", "mlp", "dwsep", "resnet", "bn")}
    for name, net, act, weight, pc in [
        ("ort_qdq_cnn_s8_pt", "cnn", "QInt8", "QInt8", False),
        ("ort_qdq_cnn_s8_pc", "cnn", "QInt8", "QInt8", True),
        ("ort_qdq_cnn_u8", "cnn", "QUInt8", "QUInt8", False),
        ("ort_qdq_mlp_s8", "mlp", "QInt8", "QInt8", False),
        ("ort_qdq_mlp_u8", "mlp", "QUInt8", "QUInt8", False),
        ("ort_qdq_bn_s8", "bn", "QInt8", "QInt8", True),
        ("ort_qdq_dwsep_u8_pc", "dwsep", "QUInt8", "QInt8", True),
        ("ort_qdq_resnet_s8", "resnet", "QInt8", "QInt8", True),
    ]:
        z[name] = lambda name=name, net=net, act=act, weight=weight, pc=pc: qdq(name, net, act, weight, pc)
    z["ort_qdq_cnn_int4"] = qdq_int4
    z["ort_qdq_cnn_op13"] = lambda: qdq_opset(13)
    z[f"ort_qdq_cnn_op{NEWEST_ORT_OPSET}"] = lambda: qdq_opset(NEWEST_ORT_OPSET)
    for name, net, act, weight in [
        ("ort_qop_cnn_u8", "cnn", "QUInt8", "QInt8"),
        ("ort_qop_mlp_u8", "mlp", "QUInt8", "QInt8"),
        ("ort_qop_dwsep_u8", "dwsep", "QUInt8", "QInt8"),
        ("ort_qop_resnet_s8", "resnet", "QInt8", "QInt8"),
        ("ort_qop_bn_u8", "bn", "QUInt8", "QInt8"),
    ]:
        z[name] = lambda name=name, net=net, act=act, weight=weight: qop(name, net, act, weight)
    return z
