"""Float digits nets, trained once with torch (deterministic, one thread) and exported with torch.onnx.

The legacy TorchScript exporter (`dynamo=False`) still exists in torch 2.13 and is used at opset 17.
`training=PRESERVE` on a model in eval mode keeps BatchNormalization unfolded (the EVAL mode runs
the eval peephole pass that fuses Conv+BN). Constant plumbing (Identity of parameters, the
ConstantOfShape/Slice/Transpose chain that computes Pad's pads) is folded into initializers so that
the float nets are clean; the quirks family keeps such plumbing on purpose.
"""

from __future__ import annotations

import contextlib
import functools
import io
import warnings

import numpy as np
import onnx

from . import _cache
from ._common import digits_split, finalize, fold_constants

NETS = ("cnn", "mlp", "dwsep", "resnet", "bn", "quirks")
OPSET = 17
EPOCHS = 15


def _modules():
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class CNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
            self.conv2 = nn.Conv2d(8, 16, 3, stride=2)
            self.fc = nn.Linear(16 * 3 * 3, 10)

        def forward(self, x):
            x = F.relu(self.conv1(x))
            x = F.relu(self.conv2(x))
            return self.fc(torch.flatten(x, 1))

    class MLP(nn.Module):
        """Explicit matmul + add so the export is MatMul/Add, not Gemm."""

        def __init__(self):
            super().__init__()
            self.w1 = nn.Parameter(torch.randn(64, 32) * 64 ** -0.5)
            self.b1 = nn.Parameter(torch.zeros(32))
            self.w2 = nn.Parameter(torch.randn(32, 10) * 32 ** -0.5)
            self.b2 = nn.Parameter(torch.zeros(10))

        def forward(self, x):
            x = F.relu(torch.matmul(x, self.w1) + self.b1)
            return torch.matmul(x, self.w2) + self.b2

    class DWSep(nn.Module):
        """Two depthwise(stride 2)/pointwise stages so that GlobalAveragePool still sees where strokes are."""

        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 16, 3, padding=1)
            self.dw1 = nn.Conv2d(16, 16, 3, stride=2, padding=1, groups=16)
            self.pw1 = nn.Conv2d(16, 32, 1)
            self.dw2 = nn.Conv2d(32, 32, 3, stride=2, padding=1, groups=32)
            self.pw2 = nn.Conv2d(32, 32, 1)
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(32, 10)

        def forward(self, x):
            x = F.relu6(self.conv(x))
            x = F.relu6(self.pw1(F.relu6(self.dw1(x))))
            x = F.relu6(self.pw2(F.relu6(self.dw2(x))))
            return self.fc(torch.flatten(self.pool(x), 1))

    class ResNet(nn.Module):
        """Two conv branches added; one branch dilated; grouped strided conv after the Add."""

        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(1, 8, 3, padding=1)
            self.a1 = nn.Conv2d(8, 8, 3, padding=1)
            self.a2 = nn.Conv2d(8, 8, 3, padding=1)
            self.b = nn.Conv2d(8, 8, 3, padding=2, dilation=2)
            self.down = nn.Conv2d(8, 16, 3, stride=2, groups=2)
            self.fc = nn.Linear(16 * 3 * 3, 10)

        def forward(self, x):
            x = F.relu(self.stem(x))
            a = self.a2(F.relu(self.a1(x)))
            x = F.relu(a + self.b(x))
            x = F.relu(self.down(x))
            return self.fc(torch.flatten(x, 1))

    class BN(nn.Module):
        """Conv+BN+Relu, then MaxPool branch and asymmetric-Pad/Conv/Sigmoid branch, Concat, Tanh, AvgPool, Softmax."""

        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
            self.bn = nn.BatchNorm2d(8)
            self.convb = nn.Conv2d(8, 8, 3, stride=2)
            self.conv2 = nn.Conv2d(16, 16, 3, padding=1)
            self.fc = nn.Linear(16 * 2 * 2, 10)
            self.probs = False

        def forward(self, x):
            x = F.relu(self.bn(self.conv1(x)))
            a = F.max_pool2d(x, 2)
            b = torch.sigmoid(self.convb(F.pad(x, (0, 1, 0, 1))))
            x = torch.tanh(self.conv2(torch.cat([a, b], 1)))
            x = F.avg_pool2d(x, 2)
            x = self.fc(torch.flatten(x, 1))
            return torch.softmax(x, 1) if self.probs else x

    class Quirks(nn.Module):
        """Exporter quirks: a per-channel affine done in NHWC between two permutes, mean over (2,3)
        with keepdim (ReduceMean, not GlobalAveragePool), and view(x.size(0), -1), which exports as
        Reshape with its shape computed by Shape -> Gather -> Unsqueeze -> Concat."""

        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 16, 3, padding=1)
            self.gain = nn.Parameter(torch.ones(16))
            self.shift = nn.Parameter(torch.zeros(16))
            self.dw1 = nn.Conv2d(16, 16, 3, stride=2, padding=1, groups=16)
            self.pw1 = nn.Conv2d(16, 32, 1)
            self.dw2 = nn.Conv2d(32, 32, 3, stride=2, padding=1, groups=32)
            self.pw2 = nn.Conv2d(32, 32, 1)
            self.fc = nn.Linear(32, 10)

        def forward(self, x):
            x = F.relu(self.conv(x))
            x = (x.permute(0, 2, 3, 1) * self.gain + self.shift).permute(0, 3, 1, 2)
            x = F.relu(self.pw1(F.relu(self.dw1(x))))
            x = F.relu(self.pw2(F.relu(self.dw2(x))))
            x = x.mean((2, 3), keepdim=True)
            return self.fc(x.view(x.size(0), -1))

    return {"cnn": CNN, "mlp": MLP, "dwsep": DWSep, "resnet": ResNet, "bn": BN, "quirks": Quirks}


@contextlib.contextmanager
def deterministic_torch(check_kernels: bool = True):
    """One thread and, with check_kernels, torch's deterministic-algorithms mode.

    torch.ao's quantized kernels raise in that mode (quantized_resize_cpu_, even with warn_only),
    so torch.ao runs with one thread only, which makes fbgemm's kernels reproducible."""
    import torch

    threads = torch.get_num_threads()
    det = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(check_kernels)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(det)


def net_input(name: str, x: np.ndarray) -> np.ndarray:
    """Digits images shaped for the net: the MLP takes flattened (N,64)."""
    return x.reshape(len(x), 64) if name == "mlp" else x


def _train(name: str):
    import torch
    import torch.nn.functional as F

    x_tr, y_tr, _, _ = digits_split()
    torch.manual_seed(0)
    net = _modules()[name]()
    x = torch.from_numpy(net_input(name, x_tr).copy())
    y = torch.from_numpy(y_tr.copy())
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(0)
    net.train()
    for _ in range(EPOCHS):
        perm = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), 32):
            idx = perm[i:i + 32]
            loss = F.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    return net


def _export(name: str, net) -> onnx.ModelProto:
    import torch

    if hasattr(net, "probs"):
        net.probs = True
    example = torch.from_numpy(net_input(name, digits_split()[0][:1]).copy())
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net, (example,), buf, dynamo=False, opset_version=OPSET,
            training=torch.onnx.TrainingMode.PRESERVE,
            input_names=["input"], output_names=["output"],
            dynamic_axes={"input": {0: "N"}, "output": {0: "N"}},
        )
    model = fold_constants(onnx.load_from_string(buf.getvalue()))
    return finalize(model, producer="pytorch", producer_version=torch.__version__.split("+")[0])


@functools.cache
def trained(name: str) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """The exported float net and its torch state dict (as numpy), trained once and cached on disk."""
    key = f"_float_{name}"
    hit = _cache.load(key)
    if hit is None:
        with deterministic_torch():
            net = _train(name)
            state = {k: v.detach().numpy().copy() for k, v in net.state_dict().items()}
            model = _export(name, net)
        hit = {"onnx": _cache.to_bytes_array(model.SerializeToString()),
               **{f"state:{k}": v for k, v in state.items()}}
        _cache.store(key, hit)
    model = onnx.load_from_string(hit["onnx"].tobytes())
    state = {k[len("state:"):]: v for k, v in hit.items() if k.startswith("state:")}
    return model, state


def load_state(name: str):
    """A torch module of the net with the trained weights, in eval mode."""
    import torch

    net = _modules()[name]()
    net.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in trained(name)[1].items()})
    return net.eval()
