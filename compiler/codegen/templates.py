"""The one Jinja environment of mcuc, and template lookup through a board's families.

Templates live in ``templates/<family>/<name>``. A board lists its families in override order
(e.g. ``[cortex-m, generic]``); ``resolve`` returns the first family that has the template, so
adding ``templates/cortex-m/conv2d_dw.c.j2`` overrides the generic one for every Cortex-M board
without a line of Python changing. Templates receive plain values computed in Python.
"""

from __future__ import annotations

from functools import cache

import jinja2

from .. import resources
from ..errors import McucError


def environment() -> jinja2.Environment:
    """The environment over the installed templates/ (one per templates root, cached)."""
    return _environment(str(resources.templates_dir()))


@cache
def _environment(root: str) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(root),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def resolve(name: str, families: list[str] | tuple[str, ...]) -> str:
    """``family/name`` of the first family (in override order) that has template ``name``."""
    root = resources.templates_dir()
    for fam in families:
        if (root / fam / name).is_file():
            return f"{fam}/{name}"
    raise McucError(f"no template {name!r} in families {list(families)}")


def render(name: str, families, **params) -> tuple[str, str]:
    """Render template ``name`` found through ``families``; returns (template path, text)."""
    path = resolve(name, families)
    try:
        text = environment().get_template(path).render(families=list(families), **params)
    except jinja2.UndefinedError as e:
        raise RuntimeError(f"template {path}: {e}") from None
    return path, text
