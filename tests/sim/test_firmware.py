"""Firmware on the Cortex-M4 boards in QEMU and Unicorn: outputs bit-exact with the reference
interpreter, the same instruction and cycle counts from both engines for the same ELF and
inputs, all samples in one boot, and clear failures (hang, crash, too big)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from click.testing import CliRunner

import tests.models as zoo
from compiler.boards import load_board
from compiler.cli import main
from compiler.codegen import generate_project
from compiler.errors import McucError
from compiler.io import from_device, to_device
from compiler.ir import interpreter
from compiler.sim import firmware, qemu, runner

from ..codegen._tools import STRICT
from ..frontend.zoo_check import compile_zoo, feeds_for
from ._fw import FIRMWARE_BOARDS, need_arm_toolchain, need_qemu

QUANTIZED = [n for n in zoo.ZOO if not n.startswith("float_") and n != "qonnx_cnn_bipolar"]
DIGITS = "ort_qdq_cnn_s8_pc"
pytestmark = [pytest.mark.arm_gcc]


def _project(name, tmp_path, board="stm32f4-discovery", n=None):
    z = zoo.build(name)
    g = compile_zoo(z, tmp_path)
    feeds = feeds_for(g, z)
    if n is not None:
        feeds = {k: v[:n] for k, v in feeds.items()}
    proj = tmp_path / "proj"
    man = generate_project(g, load_board(board), proj, model_name=name, model_sha256="0" * 64)
    return g, feeds, proj, man


def _check(g, feeds, run):
    want = interpreter.run(g, feeds)
    got = from_device(g, run.outputs)
    for v in g.outputs:
        assert got[v.name].dtype == want[v.name].dtype
        assert np.array_equal(got[v.name], want[v.name]), v.name


def _same_counts(a, b):
    assert (a.instructions, a.cycles, a.instructions_total, a.cycles_total) == \
        (b.instructions, b.cycles, b.instructions_total, b.cycles_total)
    assert [(x["name"], x["instructions"], x["cycles"]) for x in a.layers] == \
        [(x["name"], x["instructions"], x["cycles"]) for x in b.layers]


@pytest.mark.qemu
@pytest.mark.parametrize("name", QUANTIZED)
def test_zoo_qemu_and_unicorn_bit_exact_same_counts(name, tmp_path):
    """Every quantized test model on stm32f4-discovery: QEMU runs all its samples in one boot;
    Unicorn runs the first 16 (all 540 would take up to 40 s a model), and QEMU's counts on those
    same samples equal Unicorn's."""
    need_arm_toolchain()
    need_qemu()
    g, feeds, proj, _ = _project(name, tmp_path)
    fw = firmware.build_firmware(proj)
    dev = to_device(g, feeds)
    q = runner.run_firmware(proj, dev, sim="qemu", fw=fw)
    _check(g, feeds, q)
    assert q.sessions == 1 and q.result["samples"] == str(q.samples)
    assert q.instructions > 0 and q.cycles >= q.instructions
    assert sum(li["instructions"] for li in q.layers) <= q.instructions
    few = {k: v[:16] for k, v in feeds.items()}
    dev_few = to_device(g, few)
    u = runner.run_firmware(proj, dev_few, sim="unicorn", fw=fw)
    _check(g, few, u)
    _same_counts(runner.run_firmware(proj, dev_few, sim="qemu", fw=fw), u)


@pytest.mark.parametrize("board", FIRMWARE_BOARDS)
def test_every_board_runs_the_digits_cnn(board, tmp_path):
    """Each firmware board builds the digits CNN and runs it in every simulator it has here."""
    need_arm_toolchain(board)
    g, feeds, proj, man = _project(DIGITS, tmp_path, board, n=4)
    assert man["fits"]["flash_bytes"] <= man["fits"]["flash_available"]
    fw = firmware.build_firmware(proj)
    runs = []
    sims = ["unicorn"] + (["qemu"] if load_board(board).simulators.qemu and qemu.available() else [])
    for sim in sims:
        r = runner.run_firmware(proj, to_device(g, feeds), sim=sim, fw=fw)
        _check(g, feeds, r)
        runs.append(r)
    for r in runs[1:]:
        _same_counts(runs[0], r)


@pytest.mark.qemu
def test_auto_picks_qemu_then_unicorn(tmp_path):
    need_arm_toolchain()
    need_qemu()
    g, feeds, proj, _ = _project(DIGITS, tmp_path, n=2)
    fw = firmware.build_firmware(proj)
    assert runner.choose(fw, "auto")[0] == "qemu"
    nucleo = firmware.Firmware(fw.elf, fw.manifest, load_board("nucleo-l4r5zi"), fw.toolchain, fw.symbols)
    sim, why = runner.choose(nucleo, "auto")
    assert sim == "unicorn" and "no QEMU machine" in why
    with pytest.raises(McucError, match="no qemu description"):
        runner.choose(nucleo, "qemu")
    with pytest.raises(McucError, match="renode"):
        runner.choose(fw, "renode")


@pytest.mark.qemu
def test_sessions_split_when_inputs_exceed_free_flash(tmp_path, monkeypatch):
    """Samples that do not fit the flash after the image run in several boots, still bit-exact."""
    need_arm_toolchain()
    need_qemu()
    g, feeds, proj, _ = _project(DIGITS, tmp_path, n=7)
    fw = firmware.build_firmware(proj)
    fw.symbols["mcuc_input_blob_end"] = fw.symbols["mcuc_input_blob"] + 20 + 4 + 3 * 64
    r = runner.run_firmware(proj, to_device(g, feeds), sim="qemu", fw=fw)
    assert r.sessions == 3
    _check(g, feeds, r)


def _sabotage(proj, model, body):
    src = proj / f"{model}.c"
    text = src.read_text()
    src.write_text(text.replace("    return 0;\n}", body + "\n    return 0;\n}", 1))


@pytest.mark.qemu
@pytest.mark.parametrize("sim", ["qemu", "unicorn"])
def test_hung_firmware_times_out_with_last_line(sim, tmp_path):
    need_arm_toolchain()
    if sim == "qemu":
        need_qemu()
    g, feeds, proj, _ = _project(DIGITS, tmp_path, n=2)
    _sabotage(proj, DIGITS, "    for (volatile int i = 0;; ++i) {\n    }")
    last = "last output line: .MCUC_BOOT board=st/stm32f4-discovery"
    with pytest.raises(McucError, match=rf"^{sim}: the firmware did not finish within 2 s.*{last}"):
        runner.run_firmware(proj, to_device(g, feeds), sim=sim, timeout=2)


@pytest.mark.qemu
@pytest.mark.parametrize("sim", ["qemu", "unicorn"])
def test_crashing_firmware_is_reported(sim, tmp_path):
    need_arm_toolchain()
    if sim == "qemu":
        need_qemu()
    g, feeds, proj, _ = _project(DIGITS, tmp_path, n=2)
    _sabotage(proj, DIGITS, "    ((void (*)(void))0x30000001u)();")
    with pytest.raises(McucError, match=rf"^{sim}: .*(crash|fault)"):
        runner.run_firmware(proj, to_device(g, feeds), sim=sim, timeout=20)


def test_model_too_big_fails_at_compile_time_with_numbers(tmp_path):
    z = zoo.build(DIGITS)
    g = compile_zoo(z, tmp_path)
    b = load_board("stm32f4-discovery")
    mems = [m.model_copy(update={"size": 2048}) if m.kind == "flash" else m for m in b.memories]
    tiny = b.model_copy(update={"memories": mems})
    with pytest.raises(McucError, match=r"does not fit st/stm32f4-discovery's flash: it needs [\d,]+ B \(weights [\d,]+"):
        generate_project(g, tiny, tmp_path / "p", model_name="d", model_sha256="0" * 64)
    mems = [m.model_copy(update={"size": 4096}) if m.kind == "ram" else m for m in b.memories]
    with pytest.raises(McucError, match=r"does not fit st/stm32f4-discovery's RAM: it needs [\d,]+ B \(arena"):
        generate_project(g, b.model_copy(update={"memories": mems}), tmp_path / "q", model_name="d", model_sha256="0" * 64)


def test_firmware_c_is_warning_clean(tmp_path):
    """The generated firmware builds with -Wall -Wextra -Werror (whichever toolchain is here)."""
    need_arm_toolchain()
    import subprocess

    from compiler.codegen import toolchain

    _, _, proj, man = _project("ort_qdq_resnet_s8", tmp_path)
    tc = toolchain.select(load_board("stm32f4-discovery"))
    flags = " ".join([*tc.cflags, *STRICT[1:]])
    r = subprocess.run(["make", "-B", "PROFILE=1", f"CFLAGS={flags}", *[f"{k}={v}" for k, v in tc.make_vars.items()
                                                                       if k != "CFLAGS"]],
                       cwd=proj, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (proj / man["target"]).is_file()


@pytest.mark.qemu
def test_cli_run_json_and_table(tmp_path):
    need_arm_toolchain()
    need_qemu()
    z = zoo.build(DIGITS)
    model = tmp_path / "digits.onnx"
    model.write_bytes(z.model.SerializeToString())
    x = tmp_path / "x.npy"
    np.save(x, np.asarray(z.inputs)[:5])
    cli = CliRunner()
    r = cli.invoke(main, ["run", str(model), "-b", "stm32f4-discovery", "-i", str(x), "-o", str(tmp_path / "y.npy"),
                          "--rounding", "onnx", "--json"])
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout.strip().splitlines()[0])
    for key in ("board", "simulator", "toolchain", "instructions", "cycles", "cycle_model", "macs", "arena_bytes",
                "flash_bytes", "layers"):
        assert key in rep, key
    assert rep["simulator"] == "qemu" and "estimated, Cortex-M4 model" in rep["cycle_model"]
    assert rep["macs"] == sum(li["macs"] for li in rep["layers"]) > 0
    assert {"name", "op", "macs", "instructions", "cycles"} <= set(rep["layers"][0])
    i = cli.invoke(main, ["interpret", str(model), "-i", str(x), "-o", str(tmp_path / "ref.npy"), "--rounding", "onnx"])
    assert i.exit_code == 0
    assert np.array_equal(np.load(tmp_path / "y.npy"), np.load(tmp_path / "ref.npy"))
    t = cli.invoke(main, ["run", str(model), "-b", "nucleo-l4r5zi", "-i", str(x), "--rounding", "onnx", "--sim", "unicorn"])
    assert t.exit_code == 0, t.output
    assert "estimated, Cortex-M4 model" in t.stdout and re.search(r"total per", t.stdout)


def test_zig_fallback_builds_and_runs(tmp_path, monkeypatch):
    """Without a GCC cross compiler, the clang in PyPI's ziglang builds the same firmware."""
    from compiler.codegen import toolchain

    if not toolchain.zig_available():
        pytest.skip("the ziglang package is not installed (pip install ziglang)")
    monkeypatch.setenv("MCUC_TOOLCHAIN", "zig")
    g, feeds, proj, man = _project(DIGITS, tmp_path, n=3)
    assert man["toolchain"].startswith("zig cc")
    r = runner.run_firmware(proj, to_device(g, feeds), sim="unicorn")
    assert r.toolchain.startswith("zig cc")
    _check(g, feeds, r)
