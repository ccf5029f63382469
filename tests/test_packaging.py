"""The wheel carries templates/, runtime_c/ and boards/ and works installed, outside the repository.

Builds the wheel, installs it without dependencies into a fresh venv in a temporary directory,
makes the test venv's third-party packages importable behind it (no network at test time), and
compiles a model with the installed `mcuc` from a directory that is not the checkout.
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import onnx
import pytest

from .ir.tiny_models import tiny_qdq_cnn

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_installs_and_compiles_outside_the_repo(tmp_path):
    dist = tmp_path / "dist"
    r = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist), str(REPO)],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    wheel = next(dist.glob("mcuc-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for must in ("compiler/_data/templates/generic/conv2d_im2col.c.j2", "compiler/_data/runtime_c/include/mcuc_round.h",
                 "compiler/_data/boards/generic/host/board.yaml", "compiler/cli.py"):
        assert must in names, must

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    site = Path(subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    with zipfile.ZipFile(wheel) as zf:  # installing a wheel is unpacking it into site-packages
        zf.extractall(site)
    # Dependencies from the test venv, placed after the venv's own site-packages; the repository's
    # editable install is excluded so that only the wheel can provide `compiler`.
    deps = sysconfig.get_paths()["purelib"]
    (site / "zz_test_deps.pth").write_text(deps + "\n")
    work = tmp_path / "elsewhere"
    work.mkdir()
    model = work / "tiny.onnx"
    onnx.save(tiny_qdq_cnn(), model)
    code = ("import sys; sys.path[:] = [p for p in sys.path if p.rstrip('/') != %r]; "
            "import compiler, compiler.resources as r; print(compiler.__file__); print(r.data_root()); "
            "from compiler.cli import main; sys.argv = ['mcuc', 'compile', 'tiny.onnx', '--board', 'host', '-o', 'out']; main()"
            % str(REPO))
    r = subprocess.run([py, "-S", "-c", "import site; site.main(); " + code], capture_output=True, text=True, cwd=work,
                       env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert r.returncode == 0, r.stderr[-3000:]
    lines = r.stdout.splitlines()
    assert lines[0].startswith(str(site)), lines[0]
    assert lines[1].startswith(str(site)), lines[1]
    assert (work / "out" / "tiny.c").exists() and (work / "out" / "Makefile").exists()
    subprocess.run(["make", "-s", "-C", str(work / "out")], check=True, capture_output=True)
