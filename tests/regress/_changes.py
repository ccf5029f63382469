"""Changes a test makes to the generated project to check that ``mcuc regress`` catches them:
never in the product, always through monkeypatching what the measurement calls."""

from __future__ import annotations

import re
from pathlib import Path

from compiler import codegen
from compiler.codegen import memory


def _after_generate(monkeypatch, edit) -> None:
    """Make ``edit(project_dir, manifest)`` run on every project the measurement generates."""
    real = codegen.generate_project

    def generate(graph, board, out_dir, **kw):
        man = real(graph, board, out_dir, **kw)
        edit(Path(out_dir), man)
        return man

    monkeypatch.setattr(codegen, "generate_project", generate)


def slow_down_kernel(monkeypatch, layer: str, extra_cycles: int) -> None:
    """Put a busy loop of about ``extra_cycles`` estimated cycles (subs + taken bne: 1 + 1 + P=2
    cycles per iteration on the Cortex-M4 model) at the start of ``layer``'s kernel."""
    iters = max(1, round(extra_cycles / 4))

    def edit(d: Path, man: dict) -> None:
        func = next(li["function"] for li in man["layers"] if li["layer"] == layer)
        src = d / f"{man['model']}_kernels.c"
        text = src.read_text()
        # Every definition: a kernel may come in a DSP and a portable variant under #if.
        pat = re.compile(rf"^((?:\w+ )*void {re.escape(func)}\([^)]*\)\n\{{\n)", re.MULTILINE)
        loop = ('    __asm__ volatile("1: subs %0, %0, #1\\n\\tbne 1b" : "+r"(mcuc_test_n) : : "cc");\n')
        new, n = pat.subn(lambda m: m.group(1) + f"    uint32_t mcuc_test_n = {iters}u;\n" + loop, text)
        assert n >= 1, f"kernel {func} not found"
        src.write_text(new)

    _after_generate(monkeypatch, edit)


def flip_output_element(monkeypatch, index: int = 3) -> None:
    """XOR the lowest bit of one element of the first output just before ``<model>_run`` returns."""

    def edit(d: Path, man: dict) -> None:
        out = man["outputs"][0]
        src = d / f"{man['model']}.c"
        text = src.read_text()
        marker = "    return 0;\n}"
        assert text.count(marker) == 1
        flip = f"    out_{out['name']}[{index}] ^= 1;\n"
        src.write_text(text.replace(marker, flip + marker))

    _after_generate(monkeypatch, edit)


def grow_arena(monkeypatch, by: int = 1) -> None:
    """The memory planner asks for ``by`` more bytes than it needs (as a planner change would)."""
    real = memory.plan

    def plan(*a, **kw):
        p = real(*a, **kw)
        p.arena_bytes += by
        return p

    monkeypatch.setattr(memory, "plan", plan)
