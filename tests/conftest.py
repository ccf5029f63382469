"""Shared fixtures: where the MLPerf Tiny reference models are, and tool availability."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MLPERF = REPO.parent / "shared" / "models" / "mlperf_tiny"
MLPERF_MODELS = ["kws", "vww", "ic", "ad"]


def mlperf_path(name: str) -> Path:
    if not (MLPERF / f"{name}.onnx").exists():
        pytest.skip(f"MLPerf Tiny models not found at {MLPERF} (they live in ../shared beside the repository)")
    return MLPERF / f"{name}.onnx"


def need_tool(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed (make setup installs it as root)")
    return path
