"""The pytest plugin: ``pytest --mcuc-baseline B --mcuc-board host`` adds one item per record
and the ``mcuc_regress`` fixture works in a project's own tests (run in a child pytest)."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from importlib.metadata import entry_points

from click.testing import CliRunner

from compiler.cli import main

PROJECT_TEST = '''
def test_custom(mcuc_regress):
    rec = mcuc_regress.measure(MODEL, board="host")
    assert rec.arena_bytes < 4096
    mcuc_regress.check(rec)
'''


def _pytest(tmp_path, *args):
    installed = any(ep.value == "compiler.regress.pytest_plugin" for ep in entry_points(group="pytest11"))
    plugin = [] if installed else ["-p", "compiler.regress.pytest_plugin"]
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
                           *plugin, *args], cwd=tmp_path, capture_output=True, text=True, timeout=300)


def test_plugin_items_and_fixture(model_dir, tmp_path):
    b = tmp_path / "baseline.json"
    r = CliRunner().invoke(main, ["regress", str(b), str(model_dir / "digits.onnx"), "--board", "host", "--update",
                                  "--jobs", "1", "--no-progress"])
    assert r.exit_code == 0, r.output
    (tmp_path / "test_project.py").write_text(f"MODEL = {str(model_dir / 'digits.onnx')!r}\n" + PROJECT_TEST)
    p = _pytest(tmp_path, "--mcuc-baseline", str(b), "--mcuc-board", "host", "test_project.py", "-rA")
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-2000:]
    assert "2 passed" in p.stdout and "digits@host" in p.stdout

    # The baseline's stored output changed by one element: both the item and the fixture fail,
    # naming the output.
    data = json.loads(b.read_text())
    out = data["records"]["digits@generic/host"]["outputs"]["output"]
    raw = bytearray(base64.b64decode(out["data"]))
    raw[0] ^= 1
    out["data"] = base64.b64encode(bytes(raw)).decode()
    out["sha256"] = "0" * 64
    b.write_text(json.dumps(data))
    p = _pytest(tmp_path, "--mcuc-baseline", str(b), "--mcuc-board", "host", "test_project.py")
    assert p.returncode == 1, p.stdout[-3000:]
    assert "2 failed" in p.stdout and "regressed: output output" in p.stdout
    assert "1 of 40 elements differ" in p.stdout

    # Without --mcuc-baseline the plugin adds nothing and the fixture's check skips.
    p = _pytest(tmp_path, "test_project.py")
    assert p.returncode == 0 and "1 skipped" in p.stdout, p.stdout[-2000:]
