"""Shared pieces of the quantizer tests: the digits data, quantizing zoo nets once, measuring."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import numpy as np

import tests.models as zoo
from compiler.boards import load_board
from compiler.codegen import render_project
from compiler.ir import interpreter
from compiler.pipeline import compile_model
from compiler.quantize.ptq import Options, quantize

CALIBRATION_SAMPLES = 200
NETS = ("float_cnn", "float_dwsep", "float_resnet")


def shaped(name: str, x: np.ndarray) -> np.ndarray:
    """Digits images as the net takes them (the MLP reads flattened rows)."""
    return x.reshape(len(x), -1) if name == "float_mlp" else x


def calibration(name: str, n: int = CALIBRATION_SAMPLES) -> np.ndarray:
    return np.array(shaped(name, zoo.digits_split()[0][:n]))


def digits_test(name: str) -> tuple[np.ndarray, np.ndarray]:
    _, _, x, y = zoo.digits_split()
    return np.array(shaped(name, x)), y


@functools.cache
def float_accuracy(name: str) -> float:
    x, y = digits_test(name)
    return zoo.accuracy(zoo.run_ort(zoo.build(name).model, x)[0], y)


@functools.cache
def quantized(name: str, **options):
    """The quantizer's Result for a zoo float net with the given Options fields (cached per process)."""
    return quantize(zoo.build(name).model, calibration(name), Options(**options), where=name)


def accuracy(name: str, model) -> float:
    x, y = digits_test(name)
    return zoo.accuracy(zoo.run_ort(model, x)[0], y)


def compile_onnx(model):
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "q.onnx"
        p.write_bytes(model.SerializeToString())
        return compile_model(p, convention="onnx")


def weights_bytes(graph) -> int:
    return render_project(graph, load_board("host"), model_name="q", model_sha256="0" * 64).manifest["flash"]["weights_bytes"]


def interpreter_outputs(graph, x: np.ndarray) -> np.ndarray:
    return interpreter.run(graph, {graph.inputs[0].name: x})[graph.outputs[0].name]
