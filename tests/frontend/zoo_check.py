"""Compile a zoo model and compare the interpreter with the model's reference runtime."""

from __future__ import annotations

import numpy as np

from compiler.ir import interpreter
from compiler.pipeline import compile_model


def compile_zoo(z, tmp_path, convention="onnx"):
    """Compiled with ONNX arithmetic: the zoo's references are onnxruntime's (tf2onnx-style
    entries included); TFLite arithmetic is checked against TFLite Micro on the MLPerf models."""
    p = tmp_path / f"{z.name}.onnx"
    p.write_bytes(z.model.SerializeToString())
    return compile_model(p, convention=convention)


def feeds_for(g, z):
    if isinstance(z.inputs, dict):
        return dict(z.inputs)
    return {g.inputs[0].name: z.inputs}


def output_steps(g):
    """Per output: the size of one quantization step in the output's own units (1 for integers)."""
    steps = []
    for v in g.outputs:
        p = v.producer
        if p is not None and p.op == "dequantize":
            steps.append(float(np.max(p.inputs[0].type.quant.scale)))
        else:
            steps.append(1.0)
    return steps


def compare(got: list[np.ndarray], want: list[np.ndarray], steps: list[float]) -> dict:
    """Fraction of equal elements and the largest difference in output steps."""
    eq, total, worst = 0, 0, 0.0
    for a, b, s in zip(got, want, steps):
        a = np.asarray(a, np.float64).reshape(-1)
        b = np.asarray(b, np.float64).reshape(-1)
        assert a.shape == b.shape
        d = np.abs(a - b) / s
        # A float output equal up to float32 rounding of the same integer counts as equal.
        eq += int(np.sum(d < 1e-3))
        total += a.size
        worst = max(worst, float(d.max()) if d.size else 0.0)
    return {"equal": eq / max(total, 1), "max_steps": worst}


def run_interpreter(g, z) -> list[np.ndarray]:
    out = interpreter.run(g, feeds_for(g, z))
    return [out[v.name] for v in g.outputs]
