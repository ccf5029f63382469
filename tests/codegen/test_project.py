"""The generated project: determinism, the header API, the Makefile, overwrite and path safety,
and errors users can cause."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

from compiler.codegen import generate_project
from compiler.errors import McucError
from compiler.ir.dtypes import DType
from compiler.ir.graph import Graph, TensorType
from compiler.ir.quant import QParams, Requant
from compiler.sim import run_host

from ._graphs import Builder, chain_graph, random_inputs, reference
from ._tools import STRICT, have


def _read(d):
    return {p.name: p.read_bytes() for p in sorted(d.iterdir()) if p.is_file()}


def test_deterministic(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    ma = generate_project(chain_graph(), "host", a, model_name="net", model_sha256="ab" * 32)
    generate_project(chain_graph(), "host", b, model_name="net", model_sha256="ab" * 32)
    fa, fb = _read(a), _read(b)
    assert set(fa) == set(fb)
    for name in fa:
        if name != "manifest.json":
            assert fa[name] == fb[name], name
    ja, jb = json.loads(fa["manifest.json"]), json.loads(fb["manifest.json"])
    assert ja.pop("generated_at") and jb.pop("generated_at")
    assert ja == jb
    assert ma["model_sha256"] == "ab" * 32 and ma["board"] == "generic/host"
    assert set(ma["files"]) == set(fa) - {"manifest.json"}


def test_manifest_contents(tmp_path):
    from compiler import __version__

    m = generate_project(chain_graph(), "host", tmp_path, model_name="net", model_sha256="cd" * 32)
    assert m["mcuc_version"] == __version__
    for key in ("arena_bytes", "lower_bound", "sum_of_tensors"):
        assert isinstance(m["memory"][key], int)
    flash = m["flash"]
    if have("cc"):
        assert flash["code_bytes"] > 0 and flash["total_bytes"] == flash["weights_bytes"] + flash["code_bytes"]
    assert all(layer["template"] for layer in m["layers"])
    assert json.loads((tmp_path / "manifest.json").read_text()) == m


def test_header_is_the_api(tmp_path):
    """Several inputs and outputs become several parameters; macros describe each tensor."""
    b = Builder(5, "two")
    q = QParams(0.5, 3)
    x = b.inp((1, 4), DType.INT8, q)
    y = b.inp((1, 2, 2), DType.UINT8, QParams(0.25, 128))
    b.out(b.node("clamp", [x], b.ttype((1, 4), DType.INT8, q), dict(lo=0, hi=50)))
    b.out(y)
    generate_project(b.g, "host", tmp_path, model_name="Two Nets!", model_sha256="0" * 64)
    h = (tmp_path / "two_nets.h").read_text()
    assert "int two_nets_run(const int8_t *in_in0, const uint8_t *in_in1, int8_t *out_clamp1, uint8_t *out_in1);" in h
    for macro in ("TWO_NETS_IN_IN0_SHAPE {1, 4}", "TWO_NETS_IN_IN1_DTYPE uint8_t", "TWO_NETS_IN_IN0_SCALE 5.0e-01f",
                  "TWO_NETS_IN_IN1_ZERO_POINT (128)", "TWO_NETS_OUT_CLAMP1_SIZE 4", "TWO_NETS_OUT_IN1_BYTES 4"):
        assert f"#define {macro}" in h
    # The header compiles on its own and declares nothing but macros and the run function.
    src = tmp_path / "use.c"
    src.write_text('#include "two_nets.h"\nint main(void) { int8_t o[TWO_NETS_OUT_CLAMP1_SIZE]; (void)o; return 0; }\n')
    if have("cc"):
        r = subprocess.run(["cc", *STRICT, "-c", str(src), "-o", str(tmp_path / "use.o")], cwd=tmp_path,
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    feeds = random_inputs(b.g, 2)
    got = run_host(tmp_path, feeds, cflags=" ".join(STRICT))
    ref = reference(b.g, feeds)
    for k in ref:
        assert np.array_equal(got[k], ref[k])


def test_plain_make_builds(tmp_path):
    generate_project(chain_graph(), "host", tmp_path, model_name="net", model_sha256="0" * 64)
    r = subprocess.run(["make"], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "net_host").is_file()


def test_no_overwrite_without_force(tmp_path):
    generate_project(chain_graph(), "host", tmp_path, model_name="net", model_sha256="0" * 64)
    before = _read(tmp_path)
    with pytest.raises(McucError, match=r"net\.(c|h)|Makefile|manifest|exists"):
        generate_project(chain_graph(), "host", tmp_path, model_name="net", model_sha256="1" * 64)
    assert _read(tmp_path) == before
    m = generate_project(chain_graph(), "host", tmp_path, model_name="net", model_sha256="1" * 64, force=True)
    assert m["model_sha256"] == "1" * 64


def test_paths_stay_in_out_dir(tmp_path):
    out = tmp_path / "out"
    generate_project(chain_graph(), "host", out, model_name="../../etc/evil", model_sha256="0" * 64)
    written = {p.name for p in out.iterdir()}
    assert "etc_evil.c" in written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_symlink_escape_is_refused(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim.c"
    victim.write_text("keep")
    (out / "net.c").symlink_to(victim)
    with pytest.raises(McucError):
        generate_project(chain_graph(), "host", out, model_name="net", model_sha256="0" * 64, force=True)
    assert victim.read_text() == "keep"


def test_nchw_is_rejected(tmp_path):
    g = Graph("n")
    x = g.value("x", TensorType((1, 3, 5, 5), DType.INT8, QParams(0.1, 0), "NCHW"))
    g.inputs.append(x)
    w = g.const("w", np.ones((2, 3, 1, 1)), DType.INT8)
    n = g.add_node("conv2d", [x, w], [TensorType((1, 2, 5, 5), DType.INT8, QParams(0.1, 0), "NCHW")],
                   dict(kernel=(1, 1), strides=(1, 1), pads=(0, 0, 0, 0), dilations=(1, 1), groups=1, layout="NCHW",
                        x_zp=0, w_zp=0, requant=Requant.from_ratio(0.5, False), out_zp=0, act=None))
    g.outputs.append(n.out)
    with pytest.raises(McucError, match="NHWC"):
        generate_project(g, "host", tmp_path, model_name="n", model_sha256="0" * 64)


def test_boundary_quantize_dequantize_stripped(tmp_path):
    """Float I/O through quantize / dequantize: the C API takes and returns the integer tensors."""
    g = Graph("q")
    xf = g.value("image", TensorType((1, 4), DType.FLOAT32))
    g.inputs.append(xf)
    q = QParams(0.02, -5)
    xq = g.add_node("quantize", [xf], [TensorType((1, 4), DType.INT8, q)], {}, name="quant").out
    c = g.add_node("clamp", [xq], [TensorType((1, 4), DType.INT8, q)], dict(lo=-5, hi=127), name="relu").out
    yf = g.add_node("dequantize", [c], [TensorType((1, 4), DType.FLOAT32)], {}, name="deq", out_names=["scores"]).out
    g.outputs.append(yf)
    m = generate_project(g, "host", tmp_path, model_name="q", model_sha256="0" * 64)
    assert m["inputs"][0]["graph_name"] == "image" and m["inputs"][0]["dtype"] == "int8"
    assert m["inputs"][0]["scale"] == pytest.approx(0.02) and m["inputs"][0]["zero_point"] == -5
    h = (tmp_path / "q.h").read_text()
    assert "int q_run(const int8_t *in_image, int8_t *out_scores);" in h
    assert "float" not in (tmp_path / "q.c").read_text()
    x = np.array([[-128, -6, 0, 127], [1, 2, 3, -100]], np.int8)
    got = run_host(tmp_path, {"image": x})["scores"]
    assert np.array_equal(got, np.maximum(x, -5))


def test_identical_layers_share_a_kernel(tmp_path):
    b = Builder(9, "twins")
    q = QParams(0.1, 0)
    for _ in range(3):
        x = b.inp((1, 6), DType.INT8, q)
        b.out(b.node("clamp", [x], b.ttype((1, 6), DType.INT8, q), dict(lo=-3, hi=3)))
    x = b.inp((1, 7), DType.INT8, q)
    b.out(b.node("clamp", [x], b.ttype((1, 7), DType.INT8, q), dict(lo=-3, hi=3)))
    m = generate_project(b.g, "host", tmp_path, model_name="twins", model_sha256="0" * 64)
    funcs = [layer["function"] for layer in m["layers"]]
    assert funcs[0] == funcs[1] == funcs[2] != funcs[3]
    assert (tmp_path / "twins_kernels.c").read_text().count("void mcuc_clamp_s8_twins_l") == 2
    feeds = random_inputs(b.g, 2)
    got, ref = run_host(tmp_path, feeds), reference(b.g, feeds)
    assert all(np.array_equal(got[k], ref[k]) for k in ref)


@pytest.mark.parametrize("dt", [DType.INT4, DType.UINT4, DType.INT2, DType.INT1])
def test_sub_byte_packing_roundtrip(dt):
    from compiler.codegen import cdata

    rng = np.random.default_rng(0)
    for n in (1, 2, 7, 8, 9, 33):
        v = rng.choice(np.array([-1, 1]), n) if dt is DType.INT1 else rng.integers(dt.qmin, dt.qmax + 1, n)
        packed = cdata.pack(v, dt)
        assert packed.dtype == np.uint8 and packed.size == -(-n * dt.bits // 8)
        assert np.array_equal(cdata.unpack(packed, dt, n), v)
