"""``mcuc regress``: a baseline recorded on a firmware board (Unicorn) and on the host, then a
kernel made 5% slower, one output element flipped and the arena grown by one byte, each in the
test through the generated project: every change must fail the run and name its metric."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
from click.testing import CliRunner

from compiler.cli import main
from compiler.regress import schema

from ..sim._fw import need_arm_toolchain
from ._changes import flip_output_element, grow_arena, slow_down_kernel

FW = "stm32f4-discovery"


def regress(*args):
    r = CliRunner().invoke(main, ["regress", *map(str, args), "--jobs", "1", "--no-progress"])
    assert r.exit_code in (0, 1), (r.exit_code, r.output)
    return r


def failures(junit) -> dict[str, str]:
    """JUnit test case -> the metrics its failure names."""
    root = ET.parse(junit).getroot()
    out = {}
    for tc in root.iter("testcase"):
        f = tc.find("failure")
        out[tc.get("name")] = f.get("message") if f is not None else ""
    return out


@pytest.fixture(scope="module")
def fw_baseline(model_dir, tmp_path_factory):
    need_arm_toolchain(FW)
    b = tmp_path_factory.mktemp("fw") / "baseline.json"
    r = regress(b, model_dir / "digits.onnx", "--board", FW, "--sim", "unicorn", "--update")
    assert r.exit_code == 0, r.output
    return b


@pytest.mark.arm_gcc
def test_baseline_records_everything_and_reruns_clean(fw_baseline, tmp_path):
    base = schema.load(fw_baseline)
    rec = base.records["digits@st/stm32f4-discovery"]
    assert rec.simulator == "unicorn" and rec.inputs == "file:digits.npy" and rec.samples == 4
    assert rec.interpreter_exact and rec.instructions > 0 and rec.cycles >= rec.instructions
    assert rec.arena_bytes > 0 and rec.flash_bytes > rec.weights_bytes > 0
    assert rec.outputs["output"].array().shape == (4, 10)
    assert {li.name for li in rec.layers} >= {"l1_conv1_Conv", "l2_conv2_Conv", "l4_fc_Gemm"}
    assert all(li.cycles > 0 for li in rec.layers)
    assert base.recorded.mcuc and base.recorded.simulators["unicorn"].startswith("unicorn ")
    assert base.tolerances.cycles_rel == 0.01 and base.tolerances.arena_bytes == 0
    # No models named: the baseline's own records for the board, paths relative to the file.
    junit = tmp_path / "j.xml"
    r = regress(fw_baseline, "--board", FW, "--sim", "unicorn", "--junit", junit)
    assert r.exit_code == 0, r.output
    assert "unchanged" in r.output
    assert failures(junit) == {"digits": ""}


@pytest.mark.arm_gcc
def test_kernel_five_percent_slower_is_caught(fw_baseline, model_dir, monkeypatch, tmp_path):
    rec = schema.load(fw_baseline).records["digits@st/stm32f4-discovery"]
    layer = next(li for li in rec.layers if li.name == "l2_conv2_Conv")
    slow_down_kernel(monkeypatch, layer.name, layer.cycles * 5 // 100)
    junit = tmp_path / "j.xml"
    r = regress(fw_baseline, model_dir / "digits.onnx", "--board", FW, "--sim", "unicorn", "--junit", junit)
    assert r.exit_code == 1, r.output
    named = failures(junit)["digits"]
    assert "layer l2_conv2_Conv cycles" in named and "outputs" not in named and "arena_bytes" not in named
    assert "layer l1_conv1_Conv cycles" not in named and "layer l4_fc_Gemm cycles" not in named
    text = ET.parse(junit).getroot().find(".//failure").text
    line = next(ln for ln in text.splitlines() if "layer l2_conv2_Conv cycles" in ln)
    pct = float(line.split("(")[1].split("%")[0])
    assert 4.0 <= pct <= 6.0, line  # the loop adds about 5% to that layer

    # Tolerances live in the baseline: widened there, the same change passes.
    data = json.loads(fw_baseline.read_text())
    data["records"]["digits@st/stm32f4-discovery"]["tolerances"] = {
        "cycles_rel": 0.1, "layer_cycles_rel": 0.1, "instructions_rel": 0.1, "flash_bytes": 64}
    wide = tmp_path / "wide.json"
    wide.write_text(json.dumps(data))
    r = regress(wide, model_dir / "digits.onnx", "--board", FW, "--sim", "unicorn")
    assert r.exit_code == 0, r.output


@pytest.mark.arm_gcc
def test_flipped_output_element_is_caught(fw_baseline, model_dir, monkeypatch, tmp_path):
    flip_output_element(monkeypatch, index=3)
    junit = tmp_path / "j.xml"
    r = regress(fw_baseline, model_dir / "digits.onnx", "--board", FW, "--sim", "unicorn", "--junit", junit)
    assert r.exit_code == 1, r.output
    named = failures(junit)["digits"]
    assert "output output" in named and "interpreter" in named
    assert "cycles" not in named and "arena_bytes" not in named
    # The per-element check names the element: sample 0, index 3 (and every sample's).
    assert "4 of 40 elements differ" in r.output and "first [0,3]" in r.output


@pytest.mark.arm_gcc
def test_arena_one_byte_larger_is_caught(fw_baseline, model_dir, monkeypatch, tmp_path):
    grow_arena(monkeypatch, 1)
    junit = tmp_path / "j.xml"
    r = regress(fw_baseline, model_dir / "digits.onnx", "--board", FW, "--sim", "unicorn", "--junit", junit)
    assert r.exit_code == 1, r.output
    assert failures(junit)["digits"] == "arena_bytes"
    assert "+1 B" in r.output


def test_host_baseline_catches_output_and_arena(model_dir, monkeypatch, tmp_path):
    b = tmp_path / "host.json"
    assert regress(b, model_dir / "digits.onnx", "--board", "host", "--update").exit_code == 0
    rec = schema.load(b).records["digits@generic/host"]
    assert rec.simulator == "host" and rec.cycles is None and rec.layers == [] and rec.interpreter_exact
    with monkeypatch.context() as m:
        flip_output_element(m, index=0)
        junit = tmp_path / "flip.xml"
        assert regress(b, "--board", "host", "--junit", junit).exit_code == 1
        assert failures(junit)["digits"] == "interpreter; output output"
    with monkeypatch.context() as m:
        grow_arena(m, 1)
        junit = tmp_path / "arena.xml"
        assert regress(b, "--board", "host", "--junit", junit).exit_code == 1
        assert failures(junit)["digits"] == "arena_bytes"


def test_parallel_runs_in_worker_processes(model_dir, tmp_path):
    """Two models in two worker processes: both recorded, then both unchanged."""
    b = tmp_path / "two.json"
    r = CliRunner().invoke(main, ["regress", str(b), str(model_dir / "digits.onnx"), str(model_dir / "mlp.onnx"),
                                  "--board", "host", "--update", "--jobs", "2"])
    assert r.exit_code == 0, r.output
    base = schema.load(b)
    assert sorted(base.records) == ["digits@generic/host", "mlp@generic/host"]
    assert base.records["mlp@generic/host"].inputs == "random:seed=sha256[:16],samples=4"
    r = CliRunner().invoke(main, ["regress", str(b), "--board", "host", "--jobs", "2"])
    assert r.exit_code == 0, r.output
    assert "2 model run(s): 0 failing" in r.output


def test_new_model_without_record_fails(model_dir, tmp_path):
    b = tmp_path / "b.json"
    assert regress(b, model_dir / "digits.onnx", "--board", "host", "--update").exit_code == 0
    r = regress(b, model_dir / "mlp.onnx", "--board", "host")
    assert r.exit_code == 1 and "no baseline record" in r.output


@pytest.mark.parametrize("args, message", [
    (["missing.json", "--board", "host"], "no such baseline (record one with --update)"),
    (["bad.json", "--board", "host"], "not a baseline"),
    (["wrong.json", "--board", "host"], "not a valid baseline: format"),
    (["empty.json", "--board", "host"], "the baseline has no records for board generic/host"),
    (["empty.json", "nothere.onnx", "--board", "host"], "no such model file"),
    (["empty.json", "--board", "host", "--renode"], "--renode needs renode and renode-test on PATH"),
])
def test_bad_input_is_one_line(args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "wrong.json").write_text('{"format": "other"}')
    (tmp_path / "empty.json").write_text('{"format": "mcuc-regress/1"}')
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # no renode here in any case
    r = CliRunner().invoke(main, ["regress", *args, "--junit", "out.xml"])
    assert r.exit_code == 2, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mcuc: error: ") and message in lines[0], r.output
    assert not (tmp_path / "out.xml").exists()


def test_output_data_round_trips():
    import numpy as np

    for a in (np.arange(-128, 128, dtype=np.int8).reshape(2, 128), np.zeros((3, 1000), np.int8),
              np.array([[70000, -5]], np.int32)):
        o = schema.OutputData.of(a)
        assert np.array_equal(o.array(), a) and o.array().dtype == a.dtype
    assert schema.OutputData.of(np.zeros((3, 1000), np.int8)).encoding == "zlib+base64"


@pytest.mark.qemu
@pytest.mark.arm_gcc
def test_qemu_run_matches_a_unicorn_baseline(fw_baseline, model_dir, tmp_path):
    """Both engines count the same ELF the same way: a baseline recorded in Unicorn holds in
    QEMU, only the environment row says the simulator differs."""
    from ..sim._fw import need_qemu

    need_qemu()
    junit = tmp_path / "j.xml"
    r = regress(fw_baseline, model_dir / "digits.onnx", "--board", FW, "--sim", "qemu", "--junit", junit)
    assert r.exit_code == 0, r.output
    assert failures(junit) == {"digits": ""}
    out = ET.parse(junit).getroot().find(".//system-out").text
    assert out.splitlines() == [next(ln for ln in out.splitlines() if ln.startswith("changed: environment"))]


def test_compile_options_are_recorded_and_reused(model_dir, tmp_path):
    """A model recorded with --scale-policy pow2 reruns with pow2 when the options are not given
    again (its outputs would move under the exact scales), and options given on the command line
    win over the record's."""
    b = tmp_path / "baseline.json"
    assert regress(b, model_dir / "digits.onnx", "--board", "host", "--scale-policy", "pow2", "--update").exit_code == 0
    rec = schema.load(b).records["digits@generic/host"]
    assert rec.options.scale_policy == "pow2" and rec.options.rounding == "auto"
    assert regress(b, "--board", "host").exit_code == 0
    r = regress(b, "--board", "host", "--scale-policy", "exact")
    assert r.exit_code == 1 and "output output" in r.output
