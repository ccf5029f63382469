"""Digits nets built in code for the quantizer's ternary / binary tests and for ``mcuc sweep``.

Two things here need torch (a test dependency, 2.13 CPU):

- ``finetune``: a short quantization-aware fine-tune of a trained float net for a ternary or binary
  body (first and last layers stay 8-bit, as ``--weight-bits ternary|binary`` does). The body's
  weights are replaced in the forward pass by their power-of-two TWN / BWN quantization -- the
  very rounding compiler/quantize/calibrate.py applies (per-channel 2^e chosen by least squared
  error, then round-and-clip to {-1, 0, +1} or the sign) -- and gradients pass straight through
  (STE). The exported float weights are the quantized values alpha * T, so ``mcuc quantize``
  finds the same alpha and T again and only quantizes the activations.
- ``Digits``: the sweep's model builder (``mcuc sweep --builder tests.quantize.sweep_models:digits``)
  -- depthwise-separable and plain CNNs at several width multipliers, trained once and cached
  on disk like the test zoo.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import numpy as np
import onnx

from tests.models import _cache, _float
from tests.models._common import digits_split, finalize, fold_constants

QAT_EPOCHS = 15
QAT_LR = 5e-3
TRAIN_EPOCHS = 15


def _source_key() -> str:
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:10]


def _weighted(net):
    from torch import nn

    return [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def _body(net):
    """The layers ``--weight-bits ternary|binary`` quantizes below 8 bits: all but the first, the
    last and depthwise ones (compiler/quantize/ptq.py policy_plan)."""
    from torch import nn

    return [m for m in _weighted(net)[1:-1]
            if not (isinstance(m, nn.Conv2d) and m.groups > 1 and m.groups == m.in_channels)]


def _fake_quant(w, bits: int):
    """alpha * T with straight-through gradients (alpha = 2^e per output channel, as mcuc quantize picks)."""
    import torch

    from compiler.quantize.calibrate import integer_weights, quantize_weights

    wn = w.detach().numpy()
    _, exps = quantize_weights(wn, 0, bits, True)
    q = integer_weights(wn, 0, exps, bits).astype(np.float32)
    shape = (-1,) + (1,) * (wn.ndim - 1)
    deq = torch.from_numpy(q * (2.0 ** exps.astype(np.float32)).reshape(shape))
    return w + (deq - w).detach()


def _train_loop(net, x, y, epochs: int, lr: float, weights_hook=None):
    import torch
    import torch.nn.functional as F

    opt = torch.optim.Adam(net.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(0)
    net.train()
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), 32):
            idx = perm[i:i + 32]
            with weights_hook() if weights_hook else _nullcontext():
                loss = F.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    return net


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


class _QuantizedBody:
    """Within the context, the body layers' forward uses fake-quantized weights (STE)."""

    def __init__(self, net, bits: int):
        self.layers = _body(net)
        self.bits = bits
        self.saved = []

    def __enter__(self):
        import torch.nn.functional as F
        from torch import nn

        for m in self.layers:
            self.saved.append(m.forward)
            bits = self.bits
            if isinstance(m, nn.Conv2d):
                def fwd(x, m=m, bits=bits):
                    return F.conv2d(x, _fake_quant(m.weight, bits), m.bias, m.stride, m.padding, m.dilation, m.groups)
            else:
                def fwd(x, m=m, bits=bits):
                    return F.linear(x, _fake_quant(m.weight, bits), m.bias)
            m.forward = fwd
        return self

    def __exit__(self, *a):
        for m, f in zip(self.layers, self.saved):
            m.forward = f
        self.saved = []
        return False


def finetune(net, net_input, bits: int):
    """Quantization-aware fine-tune of a trained torch ``net`` for a ``bits``-bit body (2: ternary,
    1: binary); returns the net with the body's weights set to their quantized values."""
    import torch

    x_tr, y_tr, _, _ = digits_split()
    x = torch.from_numpy(net_input(x_tr).copy())
    y = torch.from_numpy(y_tr.copy())
    torch.manual_seed(1)
    _train_loop(net, x, y, QAT_EPOCHS, QAT_LR, lambda: _QuantizedBody(net, bits))
    with torch.no_grad():
        for m in _body(net):
            m.weight.copy_(_fake_quant(m.weight, bits))
    return net


@functools.cache
def finetuned_zoo_net(name: str, bits: int) -> onnx.ModelProto:
    """A test-zoo float net (``cnn``, ``dwsep``, ``resnet``) fine-tuned for a ternary / binary body."""
    key = f"_qat_{name}_w{bits}_{_source_key()}"
    hit = _cache.load(key)
    if hit is None:
        with _float.deterministic_torch():
            net = finetune(_float.load_state(name), lambda a: _float.net_input(name, a), bits)
            model = _float._export(name, net)
        hit = {"onnx": _cache.to_bytes_array(model.SerializeToString())}
        _cache.store(key, hit)
    return onnx.load_from_string(hit["onnx"].tobytes())


# -- width-multiplied nets for the sweep ------------------------------------------------------

def _ch(base: int, width: float) -> int:
    return max(2, round(base * width))


def _modules(arch: str, width: float):
    import torch
    import torch.nn.functional as F
    from torch import nn

    class DWSep(nn.Module):
        def __init__(self):
            super().__init__()
            a, b = _ch(16, width), _ch(32, width)
            self.conv = nn.Conv2d(1, a, 3, padding=1)
            self.dw1 = nn.Conv2d(a, a, 3, stride=2, padding=1, groups=a)
            self.pw1 = nn.Conv2d(a, b, 1)
            self.dw2 = nn.Conv2d(b, b, 3, stride=2, padding=1, groups=b)
            self.pw2 = nn.Conv2d(b, b, 1)
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(b, 10)

        def forward(self, x):
            x = F.relu6(self.conv(x))
            x = F.relu6(self.pw1(F.relu6(self.dw1(x))))
            x = F.relu6(self.pw2(F.relu6(self.dw2(x))))
            return self.fc(torch.flatten(self.pool(x), 1))

    class CNN(nn.Module):
        def __init__(self):
            super().__init__()
            a, b = _ch(8, width), _ch(16, width)
            self.conv1 = nn.Conv2d(1, a, 3, padding=1)
            self.conv2 = nn.Conv2d(a, b, 3, padding=1)
            self.conv3 = nn.Conv2d(b, b, 3, padding=1)
            self.pool = nn.MaxPool2d(2)
            self.fc = nn.Linear(b * 4 * 4, 10)

        def forward(self, x):
            x = F.relu(self.conv1(x))
            x = self.pool(F.relu(self.conv2(x)))
            x = F.relu(self.conv3(x))
            return self.fc(torch.flatten(x, 1))

    return {"dwsep": DWSep, "cnn": CNN}[arch]()


def _export(net) -> onnx.ModelProto:
    import io
    import warnings

    import torch

    example = torch.from_numpy(digits_split()[0][:1].copy())
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (example,), buf, dynamo=False, opset_version=_float.OPSET,
                          input_names=["input"], output_names=["output"],
                          dynamic_axes={"input": {0: "N"}, "output": {0: "N"}})
    model = fold_constants(onnx.load_from_string(buf.getvalue()))
    return finalize(model, producer="pytorch", producer_version=torch.__version__.split("+")[0])


def _build(arch: str, width: float, body_bits: int | None) -> onnx.ModelProto:
    import torch

    key = f"_sweep_{arch}_x{width:g}_b{body_bits or 0}_{_source_key()}"
    hit = _cache.load(key)
    if hit is None:
        with _float.deterministic_torch():
            torch.manual_seed(0)
            x_tr, y_tr, _, _ = digits_split()
            net = _modules(arch, width)
            _train_loop(net, torch.from_numpy(x_tr.copy()), torch.from_numpy(y_tr.copy()), TRAIN_EPOCHS, 1e-2)
            if body_bits is not None:
                net = finetune(net, lambda a: a, body_bits)
            model = _export(net)
        hit = {"onnx": _cache.to_bytes_array(model.SerializeToString())}
        _cache.store(key, hit)
    return onnx.load_from_string(hit["onnx"].tobytes())


class Digits:
    """Model builder for ``mcuc sweep``: ``model(width, body_bits)`` is the float net at that width
    multiplier (fine-tuned for a ternary / binary body when ``body_bits`` is 2 / 1); the data is
    the digits split (calibration: the first 200 training images; labelled set: the test split)."""

    def __init__(self, arch: str = "dwsep", widths=(0.5, 1.0, 2.0)):
        self.arch = arch
        self.name = f"digits-{arch}"
        self.widths = tuple(widths)

    def model(self, width: float, body_bits: int | None = None) -> onnx.ModelProto:
        return _build(self.arch, float(width), body_bits)

    def calibration(self) -> np.ndarray:
        return np.array(digits_split()[0][:200])

    def labelled(self) -> tuple[np.ndarray, np.ndarray]:
        _, _, x, y = digits_split()
        return np.array(x), np.array(y)


def digits() -> Digits:
    return Digits("dwsep")


def digits_cnn() -> Digits:
    return Digits("cnn")


class ZooNet(Digits):
    """A test-zoo float net (``cnn``, ``dwsep``, ``resnet``; width 1 only) for ``mcuc sweep``: the
    nets of the quantizer's accuracy contract, fine-tuned for ternary / binary bodies."""

    def __init__(self, net: str):
        super().__init__(net, (1.0,))
        self.name = f"float_{net}"

    def model(self, width: float, body_bits: int | None = None) -> onnx.ModelProto:
        if width != 1.0:
            from compiler.errors import McucError

            raise McucError(f"{self.name} is built at width 1 only (--widths 1)")
        if body_bits is None:
            return _float.trained(self.arch)[0]
        return finetuned_zoo_net(self.arch, body_bits)


def zoo_cnn() -> ZooNet:
    return ZooNet("cnn")


def zoo_dwsep() -> ZooNet:
    return ZooNet("dwsep")


def zoo_resnet() -> ZooNet:
    return ZooNet("resnet")
