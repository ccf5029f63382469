"""Board files: schema, errors that name file and field, lookup, and template families."""

from __future__ import annotations

import jinja2
import pytest

from compiler import resources
from compiler.boards import expand_env, list_boards, load_board, load_board_file
from compiler.codegen import templates
from compiler.errors import McucError

GOOD = """
name: {name}
vendor: acme
core: cortex-m4
isa: [dsp, fpu]
families: [generic]
memories:
  - {{name: flash, kind: flash, origin: 0x08000000, size: 1M}}
  - {{name: sram, kind: ram, origin: 0x20000000, size: 128K}}
clock_hz: 80000000
toolchain: {{cc: arm-none-eabi-gcc, cflags: [-O3, -mcpu=cortex-m4], ldflags: [-nostartfiles]}}
console: {{kind: uart, device: USART2, base: 0x40004400, baud: 115200}}
flash: {{tool: openocd, args: [-f, board/st.cfg]}}
simulators:
  qemu: {{machine: netduinoplus2}}
  renode: {{platform: platforms/cpus/stm32f4.repl}}
  unicorn:
    arch: arm
    mode: [thumb, mclass]
    cpu_model: cortex-m4
    memory_map: [{{name: flash, kind: flash, origin: 0, size: 1M}}]
"""


def _write(tmp_path, text, vendor="acme", name="b1"):
    d = tmp_path / vendor / name
    d.mkdir(parents=True)
    p = d / "board.yaml"
    p.write_text(text)
    return p


def test_host_board():
    assert "host" in list_boards()
    b = load_board("host")
    assert b.families == ["generic"] and b.qualified == "generic/host"
    assert load_board("generic/host") is b
    assert b.simulators.host and "-std=c99" in b.toolchain.cflags


def test_unknown_board_lists_available():
    with pytest.raises(McucError, match=r"unknown board 'nope'.*host"):
        load_board("nope")
    with pytest.raises(McucError, match="unknown board"):
        load_board("acme/host")


def test_full_schema_parses(tmp_path):
    b = load_board_file(_write(tmp_path, GOOD.format(name="b1")))
    assert b.memory("ram")[0].size == 128 * 1024 and b.memory("flash")[0].origin == 0x08000000
    assert b.simulators.unicorn.memory_map[0].size == 1 << 20
    assert b.console.baud == 115200 and b.isa == ["dsp", "fpu"]


@pytest.mark.parametrize("mutate, field", [
    (lambda t: t.replace("core: cortex-m4\n", ""), "core"),
    (lambda t: t.replace("size: 128K", "size: lots"), "memories.1.size"),
    (lambda t: t.replace("families: [generic]", "families: [cortex-q, generic]"), "families"),
    (lambda t: t.replace("families: [generic]", "families: [generic, generic]"), "families"),
    (lambda t: t.replace("clock_hz: 80000000", "clock_hz: -5"), "clock_hz"),
    (lambda t: t.replace("kind: uart", "kind: pigeon"), "console.kind"),
    (lambda t: t + "colour: blue\n", "colour"),
    (lambda t: t.replace("toolchain: {cc: arm-none-eabi-gcc,", "toolchain: {"), "toolchain.cc"),
])
def test_bad_board_names_file_and_field(tmp_path, mutate, field):
    p = _write(tmp_path, mutate(GOOD.format(name="b1")))
    with pytest.raises(McucError) as e:
        load_board_file(p)
    msg = str(e.value)
    assert "\n" not in msg
    assert "board.yaml" in msg and f"{field}:" in msg


def test_bad_yaml_and_wrong_directory(tmp_path):
    with pytest.raises(McucError, match="board.yaml"):
        load_board_file(_write(tmp_path, "name: [unclosed", name="b2"))
    with pytest.raises(McucError, match="must match the directory"):
        load_board_file(_write(tmp_path, GOOD.format(name="other"), name="b3"))


def test_expand_env(monkeypatch):
    monkeypatch.delenv("MCUC_T_CC", raising=False)
    assert expand_env("${MCUC_T_CC:-cc} -x") == "cc -x"
    monkeypatch.setenv("MCUC_T_CC", "clang")
    assert expand_env("${MCUC_T_CC:-cc}") == "clang"
    assert expand_env("${MCUC_T_CC:-cc}", env={}) == "cc"


def test_family_override_by_name(tmp_path, monkeypatch):
    """A more specific family's template replaces the generic one by file name alone."""
    for fam in ("generic", "cortex-m"):
        (tmp_path / fam).mkdir()
    (tmp_path / "generic" / "k.c.j2").write_text("generic {{ v }}")
    (tmp_path / "generic" / "only.c.j2").write_text("only {{ v }}")
    (tmp_path / "cortex-m" / "k.c.j2").write_text("cortex-m {{ v }}")
    monkeypatch.setattr(resources, "templates_dir", lambda: tmp_path)
    assert templates.render("k.c.j2", ["cortex-m", "generic"], v=1) == ("cortex-m/k.c.j2", "cortex-m 1")
    assert templates.render("k.c.j2", ["generic"], v=1) == ("generic/k.c.j2", "generic 1")
    assert templates.render("only.c.j2", ["cortex-m", "generic"], v=2)[0] == "generic/only.c.j2"
    with pytest.raises(McucError, match="no template"):
        templates.resolve("missing.c.j2", ["cortex-m", "generic"])
    with pytest.raises(jinja2.UndefinedError):
        templates.environment().from_string("{{ nope }}").render()


def test_board_families_must_exist(tmp_path):
    p = _write(tmp_path, GOOD.format(name="b1").replace("families: [generic]", "families: [cortex-m, generic]"))
    if (resources.templates_dir() / "cortex-m").is_dir():
        assert load_board_file(p).families[0] == "cortex-m"
    else:
        with pytest.raises(McucError, match="unknown template family 'cortex-m'"):
            load_board_file(p)


def test_codegen_selects_by_family_only():
    """Code generation never branches on which board it is: it reads families and toolchain."""
    import inspect
    import re

    from compiler.codegen import lower, project

    for mod in (lower, project, templates):
        assert not re.search(r"board\.(name|core|vendor|isa)\b", inspect.getsource(mod)), mod.__name__
