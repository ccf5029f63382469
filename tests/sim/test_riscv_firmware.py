"""Firmware on the RISC-V boards: every quantized test model bit-exact with the reference
interpreter on qemu-riscv32-virt (plain RV32IMC) in QEMU and Unicorn with the same per-inference
and per-layer instruction and RI5CY cycle counts from both engines, and on gap8 (RV32IMC + Xpulp
kernels) in Unicorn, where the fast Xpulp rewrite and the trap emulator agree on outputs and on
every timing mark."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

import tests.models as zoo
from compiler.boards import load_board
from compiler.codegen import generate_project, toolchain
from compiler.io import from_device, to_device
from compiler.ir import interpreter
from compiler.sim import firmware, riscv_unicorn, runner

from ..frontend.zoo_check import compile_zoo, feeds_for

QUANTIZED = [n for n in zoo.ZOO if not n.startswith("float_") and n != "qonnx_cnn_bipolar"]
DIGITS = "ort_qdq_cnn_s8_pc"
N_SAMPLES = 8
pytestmark = [pytest.mark.riscv_gcc]


def need_riscv_toolchain(board: str = "qemu-riscv32-virt") -> None:
    try:
        toolchain.select(load_board(board))
    except Exception as e:  # noqa: BLE001 - any reason is the skip reason
        pytest.skip(f"no RISC-V toolchain: {e}")


def need_qemu_riscv() -> None:
    if shutil.which("qemu-system-riscv32") is None:
        pytest.skip("qemu-system-riscv32 is not installed (Debian qemu-system-misc; make setup installs it as root)")
    if not any(shutil.which(c) for c in ("cc", "gcc", "clang")):
        pytest.skip("no host C compiler to build the QEMU plugin")


def _project(name, tmp_path, board, n=N_SAMPLES):
    z = zoo.build(name)
    g = compile_zoo(z, tmp_path)
    feeds = {k: v[:n] for k, v in feeds_for(g, z).items()}
    proj = tmp_path / "proj"
    generate_project(g, load_board(board), proj, model_name=name, model_sha256="0" * 64)
    return g, feeds, proj


def _check(g, feeds, run):
    want = interpreter.run(g, feeds)
    got = from_device(g, run.outputs)
    for v in g.outputs:
        assert got[v.name].dtype == want[v.name].dtype
        assert np.array_equal(got[v.name], want[v.name]), v.name


def _layers(run):
    return [(x["name"], x["instructions"], x["cycles"]) for x in run.layers]


@pytest.mark.qemu
@pytest.mark.parametrize("name", QUANTIZED)
def test_zoo_on_qemu_riscv32_virt_qemu_and_unicorn(name, tmp_path):
    need_riscv_toolchain()
    need_qemu_riscv()
    g, feeds, proj = _project(name, tmp_path, "qemu-riscv32-virt")
    fw = firmware.build_firmware(proj)
    dev = to_device(g, feeds)
    q = runner.run_firmware(proj, dev, sim="qemu", fw=fw)
    _check(g, feeds, q)
    u = runner.run_firmware(proj, dev, sim="unicorn", fw=fw)
    _check(g, feeds, u)
    assert q.sessions == 1 and q.instructions > 0 and q.cycles >= q.instructions
    # Per inference and per layer the engines agree exactly; the whole sessions differ only by
    # the few instructions of QEMU virt's reset ROM before the firmware's entry.
    assert (q.instructions, q.cycles) == (u.instructions, u.cycles)
    assert _layers(q) == _layers(u)
    assert 0 <= q.instructions_total - u.instructions_total <= 16


@pytest.mark.parametrize("name", QUANTIZED)
def test_zoo_on_gap8_unicorn(name, tmp_path):
    need_riscv_toolchain("gap8")
    g, feeds, proj = _project(name, tmp_path, "gap8")
    r = runner.run_firmware(proj, to_device(g, feeds), sim="unicorn")
    _check(g, feeds, r)
    assert r.instructions > 0 and r.cycles >= r.instructions


def test_gap8_runs_xpulp_kernels_and_rewrite_matches_trap_emulation(tmp_path):
    """The Xpulp kernels are really used, and the two emulation mechanisms give the same console
    output and the same instruction and cycle counts at every timing mark."""
    need_riscv_toolchain("gap8")
    g, feeds, proj = _project(DIGITS, tmp_path, "gap8", n=2)
    fw = firmware.build_firmware(proj)
    man = fw.manifest
    assert any(t.startswith("riscv-xpulp/") for t in man["templates"].values())
    _, samples = firmware.sample_stream(man, to_device(g, feeds))
    blob = firmware.blob(samples)
    fast = riscv_unicorn.run(fw, blob, xpulp_mode="rewrite")
    slow = riscv_unicorn.run(fw, blob, xpulp_mode="trap")
    assert firmware._OUT.findall(fast.console) == firmware._OUT.findall(slow.console)
    assert fast.marks == slow.marks and len(fast.marks) > 2
    outs, _ = firmware.parse_console(fast.console, man, len(samples), "unicorn")
    want = interpreter.run(g, feeds)
    got = from_device(g, outs)
    assert all(np.array_equal(got[v.name], want[v.name]) for v in g.outputs)


@pytest.mark.qemu
def test_riscv_cli_run_and_errors(tmp_path):
    """`mcuc run --board gap8 --sim unicorn` and `--board qemu-riscv32-virt --sim qemu` match
    `mcuc interpret` and name the RI5CY model; asking gap8 for QEMU is a one-line error."""
    import json

    from click.testing import CliRunner

    from compiler.cli import main

    need_riscv_toolchain()
    need_qemu_riscv()
    z = zoo.build(DIGITS)
    model = tmp_path / "digits.onnx"
    model.write_bytes(z.model.SerializeToString())
    x = tmp_path / "x.npy"
    np.save(x, np.asarray(z.inputs)[:3])
    cli = CliRunner()
    i = cli.invoke(main, ["interpret", str(model), "-i", str(x), "-o", str(tmp_path / "ref.npy"), "--rounding", "onnx"])
    assert i.exit_code == 0, i.output
    for board, sim in (("gap8", "unicorn"), ("qemu-riscv32-virt", "qemu")):
        y = tmp_path / f"y-{board}.npy"
        r = cli.invoke(main, ["run", str(model), "-b", board, "--sim", sim, "-i", str(x), "-o", str(y),
                              "--rounding", "onnx", "--json"])
        assert r.exit_code == 0, r.output
        rep = json.loads(r.stdout.strip().splitlines()[0])
        assert rep["simulator"] == sim and "estimated, RI5CY model" in rep["cycle_model"]
        assert np.array_equal(np.load(y), np.load(tmp_path / "ref.npy"))
    bad = cli.invoke(main, ["run", str(model), "-b", "gap8", "--sim", "qemu", "-i", str(x)])
    assert bad.exit_code != 0 and "Traceback" not in bad.output
    assert "gap8" in bad.output and "no qemu description" in bad.output


@pytest.mark.parametrize("name", ["kws", "vww", "ic", "ad"])
def test_mlperf_on_riscv_boards(name, tmp_path):
    """The MLPerf Tiny models bit-exact with TFLite Micro: on qemu-riscv32-virt in QEMU (every
    reference sample, one boot) and Unicorn (one sample, same per-layer counts), and on gap8 with
    the Xpulp kernels in Unicorn (one sample)."""
    from compiler.pipeline import compile_model
    from tests.conftest import mlperf_path

    path = mlperf_path(name)
    need_riscv_toolchain()
    g = compile_model(path)
    io = np.load(path.parent / f"{name}_io.npz")
    x, want = io["x_int8"], io["y_tflm"]
    for board in ("gap8", "qemu-riscv32-virt"):
        proj = tmp_path / board
        man = generate_project(g, board, proj, model_name=name, model_sha256="0" * 64)
        t_in, t_out = man["inputs"][0], man["outputs"][0]
        feeds = {t_in["graph_name"]: x.reshape((-1,) + tuple(t_in["shape"][1:]))}
        one = {k: v[:1] for k, v in feeds.items()}
        fw = firmware.build_firmware(proj)
        u = runner.run_firmware(proj, one, sim="unicorn", fw=fw)
        assert np.array_equal(u.outputs[t_out["graph_name"]].reshape(want[:1].shape), want[:1]), board
        if board == "qemu-riscv32-virt" and shutil.which("qemu-system-riscv32"):
            q = runner.run_firmware(proj, feeds, sim="qemu", fw=fw)
            assert q.sessions == 1 and q.samples == x.shape[0]
            assert np.array_equal(q.outputs[t_out["graph_name"]].reshape(want.shape), want)
            q1 = runner.run_firmware(proj, one, sim="qemu", fw=fw)
            assert (q1.instructions, q1.cycles) == (u.instructions, u.cycles)
            assert _layers(q1) == _layers(u)


def test_renode_artifacts_for_the_plain_rv32_board(tmp_path):
    """qemu-riscv32-virt carries a Renode script, suite and whole-machine overlay (parsed by
    robotframework); gap8, whose Xpulp Renode cannot run, carries none."""
    g = compile_zoo(zoo.build(DIGITS), tmp_path)
    virt = tmp_path / "virt"
    man = generate_project(g, load_board("qemu-riscv32-virt"), virt, model_name="digits", model_sha256="0" * 64)
    resc = (virt / "mcuc.resc").read_text()
    assert f"$elf ?= @$ORIGIN/{man['target']}" in resc and "sysbus.uart0 CreateFileBackend" in resc
    assert "LoadPlatformDescription @platforms" not in resc
    overlay = (virt / "mcuc_overlay.repl").read_text()
    assert "CPU.RiscV32" in overlay and "UART.NS16550 @ sysbus 0x10000000" in overlay and "no Xpulp" in overlay
    robot_api = pytest.importorskip("robot.api", reason="robotframework is not installed")
    model = robot_api.get_model(str(virt / "mcuc.robot"))
    assert not [e for s in model.sections for e in getattr(s, "errors", ())]
    gap = tmp_path / "gap8"
    generate_project(g, load_board("gap8"), gap, model_name="digits", model_sha256="0" * 64)
    assert not any((gap / s).exists() for s in ("mcuc.resc", "mcuc.robot", "mcuc_overlay.repl"))
    # Both may use mcuc_xpulp.h (its portable C on the plain board); only gap8 turns Xpulp on.
    assert (gap / "mcuc_xpulp.h").is_file()
    assert "-DMCUC_XPULP" in (gap / "Makefile").read_text() and "MCUC_XPULP" not in (virt / "Makefile").read_text()


@pytest.mark.parametrize("cc", ["gcc", "clang"])
@pytest.mark.parametrize("board", ["gap8", "qemu-riscv32-virt"])
def test_riscv_sources_warning_free(cc, board, tmp_path):
    """The generated RISC-V C (kernels with and without MCUC_XPULP, port, start-up, console)
    compiles with -Wall -Wextra -Werror under riscv64-unknown-elf-gcc and clang; in clang's Xpulp
    object every hardware loop has its exact 4-byte body ending with pv.sdotsp.b, as in GCC's."""
    import subprocess

    from elftools.elf.elffile import ELFFile

    from compiler.sim import xpulp

    need_riscv_toolchain(board)
    inc = "/usr/lib/picolibc/riscv64-unknown-elf/include/release"
    if cc == "clang":
        if shutil.which("clang") is None or not (Path(inc) / "stdint.h").is_file():
            pytest.skip("clang or picolibc's RV32 headers are not installed")
        cmd = ["clang", "--target=riscv32-unknown-elf", "-march=rv32imc", "-mabi=ilp32", "-isystem", inc]
    else:
        cmd = ["riscv64-unknown-elf-gcc", "--specs=picolibc.specs", "-march=rv32imc", "-misa-spec=2.2", "-mabi=ilp32"]
    for model in ("ort_qdq_dwsep_u8_pc", DIGITS):  # the RV32 depthwise kernel; the Xpulp im2col kernel
        g = compile_zoo(zoo.build(model), tmp_path)
        proj = tmp_path / model
        generate_project(g, load_board(board), proj, model_name="m", model_sha256="0" * 64)
        for xp in ([], ["-DMCUC_XPULP"]):
            for src in ("m_kernels.c", "mcuc_port.c", "mcuc_startup.c", "mcuc_console.c", "m.c"):
                obj = tmp_path / f"{src}.o"
                r = subprocess.run([*cmd, "-O2", "-std=c99", "-Wall", "-Wextra", "-Werror", *xp, "-I.", "-c", src,
                                    "-o", str(obj)], cwd=proj, capture_output=True, text=True, check=False)
                assert r.returncode == 0, (model, src, xp, r.stderr)
    if board == "gap8":
        loops = 0
        with open(tmp_path / "m_kernels.c.o", "rb") as f:
            for sec in ELFFile(f).iter_sections():
                if not sec.name.startswith(".text"):
                    continue
                ins = {a: (w, n) for a, w, n in xpulp.sweep(sec.data(), 0)}
                for a, (w, n) in ins.items():
                    d = xpulp.decode(w) if n == 4 else None
                    if d is not None and d.name == "lp.setup":
                        loops += 1
                        body = range(a + 4, a + d.imm, 4)
                        assert all(ins.get(p, (0, 2))[1] == 4 for p in body)
                        assert xpulp.decode(ins[a + d.imm - 4][0]).name == "pv.sdotsp.b"
        assert loops > 0


@pytest.mark.qemu
def test_riscv_crash_is_a_one_line_error(tmp_path, monkeypatch):
    """An illegal instruction in the firmware: QEMU traps to mcuc_fault_handler (FAIL line), Unicorn
    stops with the exception; both surface as one McucError, and a hang as a timeout."""
    from elftools.elf.elffile import ELFFile

    from compiler.errors import McucError

    need_riscv_toolchain()
    need_qemu_riscv()
    g, feeds, proj = _project(DIGITS, tmp_path, "qemu-riscv32-virt", n=1)
    fw = firmware.build_firmware(proj)
    dev = to_device(g, feeds)
    addr = fw.symbols["mcuc_port_cycles"]
    with open(fw.elf, "rb") as f:
        elf = ELFFile(f)
        text = elf.get_section_by_name(".text")
        off = text["sh_offset"] + addr - text["sh_addr"]
    data = bytearray(fw.elf.read_bytes())
    data[off:off + 4] = (0x0000707B).to_bytes(4, "little")  # custom-3, in no extension QEMU knows
    fw.elf.write_bytes(bytes(data))
    with pytest.raises(McucError, match=r"qemu: the firmware failed .*status=FAIL .*reason=fault"):
        runner.run_firmware(proj, dev, sim="qemu", fw=fw)
    with pytest.raises(McucError, match=r"unicorn: the firmware crashed \(exception 2 at pc=0x"):
        runner.run_firmware(proj, dev, sim="unicorn", fw=fw)
    # A branch to itself at the same place: the runner's timeout, with the last console line.
    data[off:off + 4] = (0x0000006F).to_bytes(4, "little")  # jal x0, 0
    fw.elf.write_bytes(bytes(data))
    with pytest.raises(McucError, match=r"did not finish within 2 s .*MCUC_BOOT board=qemu/qemu-riscv32-virt"):
        runner.run_firmware(proj, dev, sim="unicorn", fw=fw, timeout=2)
