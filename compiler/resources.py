"""Finds the data mcuc ships beside its Python code: templates/, runtime_c/ and boards/.

In a source checkout they sit at the repository root; in an installed wheel they are packed
under compiler/_data/ (see pyproject.toml). Everything else asks this module, never a path of
its own.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

_PKG = Path(__file__).resolve().parent


@cache
def data_root() -> Path:
    installed = _PKG / "_data"
    if (installed / "templates").is_dir():
        return installed
    checkout = _PKG.parent
    if (checkout / "templates").is_dir():
        return checkout
    raise RuntimeError("mcuc data files (templates/, runtime_c/, boards/) are missing from this installation")


def templates_dir() -> Path:
    return data_root() / "templates"


def runtime_dir() -> Path:
    return data_root() / "runtime_c"


def boards_dir() -> Path:
    return data_root() / "boards"
