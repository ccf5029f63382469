"""torch.ao quantized digits nets exported by torch.onnx (TorchScript exporter, opset 17).

torch 2.13 still ships torch.ao.quantization (deprecated in favour of torchao, warning on use) and
the TorchScript exporter still has symbolics for quantized::conv2d / linear / add, so both eager
mode (QuantStub + prepare/convert) and FX mode (prepare_fx/convert_fx) export to QDQ. What failed:
convert_to_reference_fx models do not export ("'torch.qscheme' object has no attribute 'detach'").

The exports carry the clutter a compiler must see through: every scale and zero point is a Constant
node, each QuantizeLinear is followed by Cast(to=UINT8), and the int32 bias zero point is computed
by ConstantOfShape + Cast(to=INT32). fbgemm's default qconfig uses reduce_range, so activations
use only [0, 127] of uint8. Constants are kept as nodes on purpose (no folding).
"""

from __future__ import annotations

import io
import warnings

import onnx

from ._common import ZooModel, all_scales_pow2, calibration_images, digits_split, finalize
from ._float import deterministic_torch, load_state


def _export(net) -> onnx.ModelProto:
    import torch

    example = torch.from_numpy(calibration_images()[:1].copy())
    buf = io.BytesIO()
    torch.onnx.export(net, (example,), buf, dynamo=False, opset_version=17, input_names=["input"],
                      output_names=["output"], dynamic_axes={"input": {0: "N"}, "output": {0: "N"}})
    return finalize(onnx.load_from_string(buf.getvalue()), producer="pytorch",
                    producer_version=torch.__version__.split("+")[0])


def eager_cnn() -> onnx.ModelProto:
    import torch
    import torch.ao.quantization as tq

    class Wrapped(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.quant, self.m, self.dequant = tq.QuantStub(), m, tq.DeQuantStub()

        def forward(self, x):
            return self.dequant(self.m(self.quant(x)))

    torch.backends.quantized.engine = "fbgemm"
    net = Wrapped(load_state("cnn")).eval()
    net.qconfig = tq.get_default_qconfig("fbgemm")
    prepared = tq.prepare(net)
    prepared(torch.from_numpy(calibration_images().copy()))
    return _export(tq.convert(prepared))


def fx_resnet() -> onnx.ModelProto:
    import torch
    import torch.ao.quantization as tq
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    torch.backends.quantized.engine = "fbgemm"
    x = torch.from_numpy(calibration_images().copy())
    prepared = prepare_fx(load_state("resnet"), tq.get_default_qconfig_mapping("fbgemm"), (x[:1],))
    prepared(x)
    return _export(convert_fx(prepared))


def entry(name: str, make, net: str) -> ZooModel:
    with warnings.catch_warnings(), deterministic_torch(check_kernels=False):
        warnings.simplefilter("ignore")
        model = make()
    _, _, x_te, y_te = digits_split()
    return ZooModel(name=name, model=model, inputs=x_te, labels=y_te, family="torch_ao",
                    pow2=all_scales_pow2(model), tvm_reason=None, source=f"float_{net}")


def entries() -> dict:
    return {
        "torch_ao_cnn_eager": lambda: entry("torch_ao_cnn_eager", eager_cnn, "cnn"),
        "torch_ao_resnet_fx": lambda: entry("torch_ao_resnet_fx", fx_resnet, "resnet"),
    }
