"""Names from a model never reach C or Jinja raw: hostile graph, node and tensor names."""

from __future__ import annotations

import re

import numpy as np
import pytest

from compiler.codegen import generate_project
from compiler.codegen.names import C_KEYWORDS, MAX_LEN, Namer, c_ident, model_ident
from compiler.ir.dtypes import DType
from compiler.ir.quant import QParams
from compiler.sim import run_host

from ._graphs import Builder, random_inputs, reference
from ._tools import STRICT

EVIL = [
    'x; system("rm -rf /")',
    "*/ int evil; /*",
    "{{ 7*7 }}",
    "{% include 'x' %}",
    "#include <stdlib.h>",
    "café_ñ_日本",
    "",
    "int",
    "INT",
    "a-b",
    "a_b",
    "__reserved",
    "9lives",
    "mcuc_round",
    "x" * 200,
    "x" * 199 + "y",
    "\n#define A\\",
    "main",
]
IDENT = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


@pytest.mark.parametrize("raw", EVIL)
def test_c_ident_is_safe(raw):
    s = c_ident(raw)
    assert IDENT.match(s)
    assert s not in C_KEYWORDS and len(s) <= MAX_LEN
    assert not s.lower().startswith("mcuc_") or s.endswith("_")


def test_namer_unique_case_insensitively():
    n = Namer()
    names = [n.name(i, raw) for i, raw in enumerate(EVIL + ["a_b", "A_B", "int_"])]
    assert len({x.lower() for x in names}) == len(names)
    assert n.name(0, "something else") == names[0]  # stable per key
    assert c_ident("x" * 200) != c_ident("x" * 199 + "y")


def test_model_ident():
    assert model_ident("../../My Model.onnx") == "my_model_onnx"
    assert IDENT.match(model_ident("🙂"))


def test_hostile_names_never_emitted(tmp_path):
    b = Builder(11, 'g"; rm -rf /')
    q = QParams(0.1, 0)
    outs = []
    for raw in EVIL:
        x = b.inp((1, 3), DType.INT8, q)
        x.name = raw  # the IR may carry any name the ONNX file had
        y = b.node("clamp", [x], b.ttype((1, 3), DType.INT8, q), dict(lo=-10, hi=10), name=raw or None)
        y.name = raw + "_out"
        outs.append(b.out(y))
    m = generate_project(b.g, "host", tmp_path, model_name='evil"*/{{x}}', model_sha256="0" * 64)
    generated = {p.name: p.read_text(encoding="utf-8") for p in tmp_path.iterdir()
                 if p.suffix in (".c", ".h") or p.name == "Makefile"}
    for name, text in generated.items():
        assert text.isascii(), name
        for raw in EVIL:
            for bad in ("system(", "*/ int evil", "{{", "{%", "#include <stdlib.h>", "#define A", "rm -rf"):
                if bad in raw:
                    assert bad not in text, (name, bad)
    # Still a working program, with every tensor addressable by its original name.
    feeds = {raw: a for raw, a in zip(EVIL, random_inputs(b.g, 2).values())}
    got = run_host(tmp_path, feeds, cflags=" ".join(STRICT))
    ref = reference(b.g, {v.name: feeds[v.name] for v in b.g.inputs})
    assert set(got) == {o.name for o in outs}
    for k in ref:
        assert np.array_equal(got[k], ref[k])
    assert [t["graph_name"] for t in m["inputs"]] == EVIL
