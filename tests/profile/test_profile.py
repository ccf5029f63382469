"""``mcuc profile``: the report's data agree with the run and the manifest, the HTML stands
alone (charts embedded, nothing fetched), and headless chromium renders the charts."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest
from click.testing import CliRunner

import tests.models as zoo
from compiler.cli import main

from ..sim._fw import need_arm_toolchain

FW = "stm32f4-discovery"
# Bar colours of the four charts (report.py): a screenshot that shows the charts has them.
CHART_COLOURS = {"cycles": (0x3b, 0x75, 0xaf), "cycles_per_mac": (0xe0, 0x7b, 0x39), "weights": (0x5a, 0xae, 0x61),
                 "code": (0x76, 0x2a, 0x83)}


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    d = tmp_path_factory.mktemp("profile-model")
    z = zoo.build("ort_qdq_cnn_s8_pc")
    (d / "digits.onnx").write_bytes(z.model.SerializeToString())
    np.save(d / "x.npy", np.asarray(z.inputs)[:12])
    np.save(d / "labels.npy", np.asarray(z.labels)[:12].astype(np.int64))
    return d


@pytest.fixture(scope="module")
def fw_report(digits, tmp_path_factory):
    need_arm_toolchain(FW)
    out = tmp_path_factory.mktemp("report")
    r = CliRunner().invoke(main, ["profile", str(digits / "digits.onnx"), "--board", FW, "--sim", "unicorn",
                                  "-i", str(digits / "x.npy"), "--labels", str(digits / "labels.npy"), "-o", str(out)])
    assert r.exit_code == 0, r.output
    return out


@pytest.mark.arm_gcc
def test_report_data(fw_report):
    d = json.loads((fw_report / "profile.json").read_text())
    assert d["interpreter_exact"] and d["simulator"] == "unicorn" and d["samples"] == 12
    assert d["charts"] == ["cycles.png", "cycles_per_mac.png", "arena.png", "flash.png"]
    assert sum(li["cycles"] for li in d["layers"]) <= d["cycles"]
    assert d["core_floor"]["cycles_per_mac"] == 0.5 and d["core_floor"]["instruction"] == "SMLAD"
    # Every MAC layer is slower than the physical floor (the floor is a floor).
    assert all(li["cycles"] / li["macs"] >= 0.5 for li in d["layers"] if li["macs"])
    # The arena timeline covers the planned arena without overlaps in time and space.
    bufs = d["buffers"]
    assert max(b["offset"] + b["bytes"] for b in bufs) == d["arena_bytes"]
    for i, a in enumerate(bufs):
        for b in bufs[i + 1:]:
            live = a["first_layer"] <= b["last_layer"] and b["first_layer"] <= a["last_layer"]
            assert not (live and a["offset"] < b["offset"] + b["bytes"] and b["offset"] < a["offset"] + a["bytes"])
    assert set(d["weights_per_layer"]) == {"l1_conv1_Conv", "l2_conv2_Conv", "l4_fc_Gemm"}
    assert all(v > 0 for v in d["code_per_kernel"].values()) and len(d["code_per_kernel"]) == 3
    acc = d["accuracy"]["labels"]
    assert acc["samples"] == 12 and acc["top1"] == acc["interpreter_top1"] >= 0.75

    html = (fw_report / "index.html").read_text()
    assert html.count("data:image/png;base64,") == 4
    assert "http://" not in html and "https://" not in html and "<script" not in html
    for png in d["charts"]:
        assert (fw_report / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_host_report_has_no_cycle_charts(digits, tmp_path):
    r = CliRunner().invoke(main, ["profile", str(digits / "digits.onnx"), "--board", "host", "-i",
                                  str(digits / "x.npy"), "-o", str(tmp_path / "r")])
    assert r.exit_code == 0, r.output
    d = json.loads((tmp_path / "r" / "profile.json").read_text())
    assert d["charts"] == ["arena.png", "flash.png"] and d["cycles"] is None and d["interpreter_exact"]
    assert "without a cycle model" in (tmp_path / "r" / "index.html").read_text()


def test_bad_labels_are_one_line_and_write_nothing(digits, tmp_path):
    np.save(tmp_path / "short.npy", np.zeros(3, np.int64))
    r = CliRunner().invoke(main, ["profile", str(digits / "digits.onnx"), "--board", "host", "-i",
                                  str(digits / "x.npy"), "--labels", str(tmp_path / "short.npy"), "-o",
                                  str(tmp_path / "r")])
    assert r.exit_code == 2
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and "labels: expected 12 integer class indices" in lines[0]
    assert not (tmp_path / "r").exists()


@pytest.mark.chromium
@pytest.mark.arm_gcc
def test_chromium_screenshot_shows_the_charts(fw_report, tmp_path):
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("chromium is not installed (make setup installs it as root)")
    shot = tmp_path / "shot.png"
    # A fresh profile directory: chromium then neither reads nor locks the user's.
    r = subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
                        "--disable-extensions", f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,3200",
                        f"--screenshot={shot}", (fw_report / "index.html").as_uri()],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and shot.is_file(), r.stderr[-2000:]
    import matplotlib.image

    img = (matplotlib.image.imread(shot)[..., :3] * 255).round().astype(np.int32)
    for chart, rgb in CHART_COLOURS.items():
        hits = np.all(np.abs(img - np.array(rgb)) <= 6, axis=-1)
        # A bar of each chart: thousands of pixels of its colour, over several rows.
        assert hits.sum() > 2000 and np.count_nonzero(hits.any(axis=1)) > 20, chart
    # And the page is not one blank colour outside the charts either.
    packed = (img[..., 0] << 16) | (img[..., 1] << 8) | img[..., 2]
    assert len(np.unique(packed)) > 50
