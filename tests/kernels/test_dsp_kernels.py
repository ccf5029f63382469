"""The Armv7E-M DSP kernels of templates/cortex-m: randomized layers (the shapes of the MLPerf
Tiny models, reduced in space, plus odd channel counts, tails and every variant that must fall
back to the portable kernel) bit-exact with the reference interpreter on stm32f4-discovery
firmware in Unicorn (one case also in QEMU, one built by clang), warning-clean, compiling without
DSP (Cortex-M3: the portable kernels), and the four MLPerf models bit-exact with TFLite Micro's
outputs on both STM32 boards."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from compiler.boards import load_board
from compiler.codegen import generate_project, toolchain
from compiler.sim import firmware, runner
from tests.codegen._graphs import I4, I8, U8, Builder
from tests.conftest import MLPERF_MODELS, mlperf_path

from ..codegen._tools import STRICT
from ..sim._fw import need_arm_toolchain, need_qemu
from ._run import run_and_compare

pytestmark = [pytest.mark.arm_gcc]

DSP_TEMPLATES = {"conv2d_1x1.c.j2", "conv2d_im2col.c.j2", "conv2d_dw.c.j2", "dense.c.j2", "add_tflite.c.j2",
                 "maxpool.c.j2"}


def layer_cases(seed: int):
    """(graph, names of the layers expected on the DSP path)."""
    b = Builder(seed, f"dsp{seed}")
    rng = b.rng
    dsp = []

    def out(v, fast=True):
        b.out(v)
        if fast:
            dsp.append(v.producer.name)

    # Pointwise: the MLPerf channel pairs (K -> O), odd pixel counts, channel tails, strides.
    for c, o in [(64, 64), (8, 16), (32, 32), (128, 128), (256, 256), (16, 32)]:
        hw = int(rng.integers(2, 6))
        out(b.conv(h=hw, w=hw + 1, c=c, o=o, k=(1, 1)))
    out(b.conv(h=5, w=3, c=13, o=7, k=(1, 1), per_channel=False, bias=False))
    out(b.conv(h=7, w=5, c=16, o=32, k=(1, 1), stride=(2, 2)))
    # Pixel pairs sign-extended into scratch, rows of 11 words (8-word steps and an odd rest).
    out(b.conv(h=3, w=3, c=44, o=48, k=(1, 1)))
    out(b.conv(h=4, w=3, c=9, o=5, k=(1, 1), kind="shift"))
    out(b.conv(h=3, w=3, c=6, o=4, k=(1, 1), kind="single"))
    out(b.conv(h=4, w=5, c=4, o=3, k=(1, 1), requant=False, bias=False))
    out(b.conv(h=4, w=4, c=7, o=3, k=(1, 1), wdt=I4), fast=False)
    out(b.conv(h=3, w=4, c=6, o=5, k=(1, 1), wzp=np.array([1, -2, 0, 3, 1])), fast=False)
    out(b.conv(h=3, w=4, c=6, o=5, k=(1, 1), xdt=U8), fast=False)
    # General convolutions: IC / VWW / KWS-like, asymmetric pads, dilation, channel tails.
    out(b.conv(h=8, w=8, c=16, o=16, k=(3, 3), pads=(1, 1, 1, 1)))
    out(b.conv(h=9, w=9, c=3, o=8, k=(3, 3), stride=(2, 2), pads=(0, 0, 1, 1)))
    out(b.conv(h=8, w=8, c=16, o=32, k=(3, 3), stride=(2, 2), pads=(0, 0, 1, 1)))
    out(b.conv(h=5, w=5, c=64, o=64, k=(3, 3), pads=(1, 1, 1, 1)))
    out(b.conv(h=5, w=4, c=4, o=16, k=(3, 3), pads=(1, 1, 1, 1)))  # unfolded pair of 18 words
    out(b.conv(h=6, w=7, c=5, o=7, k=(2, 3), pads=(0, 1, 1, 0), dil=(2, 1), kind="shift", bias=False))
    out(b.conv(h=5, w=5, c=4, o=6, k=(3, 3), pads=(1, 1, 1, 1), kind="single"))
    out(b.conv(h=4, w=3, c=3, o=4, k=(3, 3), pads=(1, 1, 1, 1), requant=False))
    out(b.conv(h=6, w=6, c=3, o=4, k=(3, 3), stride=(2, 2), pads=(0, 0, 1, 1), out_dt=U8))
    out(b.conv(h=6, w=6, c=4, o=4, k=(3, 3), groups=2, pads=(0, 0, 1, 1)), fast=False)
    out(b.conv(h=5, w=5, c=3, o=4, k=(3, 3), wzp=2, pads=(1, 1, 1, 1)), fast=False)
    # One input channel to many (the KWS stem, reduced): the depthwise template's conv path.
    out(b.conv(h=13, w=10, c=1, o=64, k=(10, 4), stride=(2, 2), pads=(4, 1, 5, 1)))
    out(b.conv(h=7, w=6, c=1, o=5, k=(3, 3), pads=(1, 1, 1, 1), per_channel=False))
    # Depthwise: 3x3 stride 1 and 2 (both SIMD row forms), odd widths, other kernels, fallbacks.
    for h, w, c, s, pads in [(25, 5, 64, 1, (1, 1, 1, 1)), (12, 12, 8, 1, (1, 1, 1, 1)), (3, 3, 32, 1, (1, 1, 1, 1)),
                             (9, 9, 16, 2, (0, 0, 1, 1)), (7, 6, 5, 2, (1, 1, 1, 1))]:
        out(b.conv(h=h, w=w, c=c, o=c, k=(3, 3), stride=(s, s), pads=pads, groups=c))
    out(b.conv(h=6, w=7, c=3, o=3, k=(3, 3), pads=(1, 1, 1, 1), groups=3, kind="shift", bias=False))
    out(b.conv(h=8, w=6, c=3, o=3, k=(2, 3), pads=(1, 0, 0, 1), dil=(2, 1), groups=3, kind="single"))
    out(b.conv(h=7, w=7, c=4, o=4, k=(5, 5), pads=(2, 2, 2, 2), groups=4, per_channel=False))
    out(b.conv(h=6, w=6, c=4, o=8, k=(3, 3), groups=4, pads=(1, 1, 1, 1)), fast=False)
    out(b.conv(h=70, w=70, c=2, o=2, k=(3, 3), groups=2, pads=(1, 1, 1, 1)), fast=False)
    # Fused ReLU (lower bound = output zero point): full range as in the MLPerf models, and a
    # narrower clamp; per channel and per tensor.
    for v, zp, hi in [(b.conv(h=4, w=5, c=32, o=16, k=(1, 1)), -128, 127),
                      (b.conv(h=6, w=6, c=8, o=8, k=(3, 3), pads=(1, 1, 1, 1), groups=8), -128, 127),
                      (b.conv(h=6, w=5, c=5, o=7, k=(3, 3), pads=(1, 1, 1, 1), per_channel=False), -5, 90),
                      (b.dense(k=40, o=9), -20, 127)]:
        v.producer.attrs.update(out_zp=zp, act=(zp, hi))
        out(v)
    # Dense: AD / KWS / IC shapes, row pairs, tails, fallbacks.
    out(b.dense(k=640, o=13))
    out(b.dense(k=64, o=12))
    out(b.dense(k=17, o=5, rows=(3,)))
    out(b.dense(k=13, o=5, kind="single", per_channel=True))
    out(b.dense(k=3, o=7))
    out(b.dense(k=8, o=6, wzp=-3, per_channel=True), fast=False)
    # Average pools: the KWS global pool, strided / dilated windows, one in the padding (portable).
    out(b.pool("avgpool", h=25, w=5, c=64, k=(25, 5), stride=(1, 1), pads=(0, 0, 0, 0)), fast=False)
    out(b.pool("avgpool", h=6, w=6, c=8, k=(2, 2), stride=(2, 2), pads=(0, 0, 0, 0), rounding_mode="even"), fast=False)
    out(b.pool("avgpool", h=7, w=7, c=12, k=(3, 3), stride=(2, 2), pads=(0, 0, 0, 0), dil=(2, 1)), fast=False)
    out(b.pool("avgpool", h=5, w=6, c=3, k=(3, 2), stride=(2, 2), pads=(1, 0, 1, 1)), fast=False)
    # TFLite add (tabulated operands): same shapes, broadcast, a constant operand, uint8.
    shape = (1, 4, 4, 8)
    out(b.add(b.inp(shape), b.inp(shape), "tflite", shape), fast=False)
    out(b.add(b.inp((1, 3, 4, 5)), b.inp((1, 1, 1, 5), U8), "tflite", (1, 3, 4, 5)), fast=False)
    cst = b.g.const(f"k{seed}", rng.integers(-128, 128, (1, 1, 3, 1)), I8, b.q())
    out(b.add(b.inp((1, 2, 1, 4)), cst, "tflite", (1, 2, 3, 4)), fast=False)
    # TFLite add as one output table (>= lower.ADD_TABLE_MIN elements): whole words, an operand
    # broadcast along the channels, uint8 operands and output.
    out(b.add(b.inp((1, 16, 16, 8)), b.inp((1, 16, 16, 8)), "tflite", (1, 16, 16, 8)), fast=False)
    out(b.add(b.inp((1, 8, 8, 33)), b.inp((1, 8, 8, 1)), "tflite", (1, 8, 8, 33)), fast=False)
    out(b.add(b.inp((1, 8, 16, 16), U8), b.inp((1, 8, 16, 16), U8), "tflite", (1, 8, 16, 16), U8), fast=False)
    # Power-of-two adds: the int32 form (zero points, half-to-even rounding and the output zero
    # point in two adds and a shift) for right shifts, the portable kernel for the others; a
    # broadcast operand, uint8 operands and output.
    for i, shape in enumerate([(1, 4, 4, 8), (1, 3, 5, 7), (1, 2, 6, 4), (1, 4, 4, 8), (1, 5, 3, 6), (1, 2, 2, 9)]):
        dt = U8 if i % 3 == 1 else I8
        other = shape if i % 2 == 0 else (1, 1, 1, shape[3])
        out(b.add(b.inp(shape, dt), b.inp(other, dt), "shift", shape, U8 if i == 1 else I8), fast=False)
    # Softmax: the exp table (int8 and uint8 inputs, rows of 10 and 33); the exact variant is portable.
    out(b.softmax((1, 10)), fast=False)
    out(b.softmax((3, 33), xdt=U8), fast=False)
    out(b.softmax((2, 7), mode="exact"), fast=False)
    # Max pools: the anchors' 2x2 (SSUB8 + SEL, unrolled taps), padded and dilated windows
    # (taps skipped at run time), and the portable ones (channels not a multiple of 4, uint8).
    out(b.pool("maxpool", h=8, w=8, c=16, k=(2, 2), stride=(2, 2), pads=(0, 0, 0, 0)))
    out(b.pool("maxpool", h=7, w=7, c=8, k=(3, 3), stride=(2, 2), pads=(1, 1, 1, 1)))
    out(b.pool("maxpool", h=9, w=8, c=4, k=(2, 3), stride=(1, 2), pads=(0, 1, 1, 0), dil=(2, 1)))
    out(b.pool("maxpool", h=6, w=6, c=6, k=(2, 2), stride=(2, 2), pads=(0, 0, 0, 0)), fast=False)
    out(b.pool("maxpool", h=6, w=6, c=8, k=(2, 2), stride=(2, 2), pads=(0, 0, 0, 0), xdt=U8), fast=False)
    return b.g, dsp


def _check_dsp_used(man, proj, dsp):
    names = set(dsp)
    kernels = (proj / f"{man['model']}_kernels.c").read_text()
    adds = [i for i in man["layers"] if i["op"] == "add" and i["template"] != "cortex-m/add_shift.c.j2"]
    assert adds and all(i["template"] == "cortex-m/add_tflite.c.j2" for i in adds)
    # Small adds tabulate their operands, large ones (the last three cases) the whole add.
    assert all(f"{i['function']}_ta[256]" in kernels for i in adds[:-3])
    assert all(f"void {i['function']}(const " in kernels and "*lut" in kernels.split(f"void {i['function']}(")[1].split(")")[0]
               for i in adds[-3:])
    assert "__uxtb16(va)" in kernels  # the four-element form of the table add
    pools = [i for i in man["layers"] if i["op"] == "maxpool"]
    assert [("mcuc_dsp_max_s8x4(" in kernels.split(f"void {i['function']}(")[1].split("\n}\n")[0]) for i in pools] == \
        [True, True, True, False, False]
    # Kernel buffers live in arena scratch (the plan counts them), not on the stack.
    assert "plane[" not in kernels and "xe[" not in kernels
    scratch = {i["template"].split("/")[1] for i in man["layers"] if i.get("scratch_bytes")}
    assert {"conv2d_dw.c.j2", "conv2d_1x1.c.j2", "dense.c.j2", "conv2d_im2col.c.j2"} <= scratch
    shifts = [i for i in man["layers"] if i["op"] == "add" and i["template"] == "cortex-m/add_shift.c.j2"]
    fast = [" & 1) + (" in kernels.split(f"void {i['function']}(")[1].split("\n}\n")[0] for i in shifts]
    assert len(shifts) == 6 and any(fast)
    soft = [i for i in man["layers"] if i["op"] == "softmax"]
    assert [f"{i['function']}_exp[" in kernels for i in soft] == [True, True, False]
    pools = [i for i in man["layers"] if i["op"] == "avgpool"]
    assert sum("__sxtab16(even, v)" in kernels.split(f"void {i['function']}(")[1].split("\n}\n")[0] for i in pools) == 3
    # Fused ReLU: USAT doubling the accumulator for SMMULR, the zero point inside the rounding shift.
    assert "__ssat(mcuc_dsp_rdbpot_zp(mcuc_dsp_relu_srdhm(" in kernels
    assert "mcuc_clamp_i32(mcuc_dsp_rdbpot_zp(mcuc_dsp_relu_srdhm(" in kernels
    # Per-channel (multiplier, rounding constant, shift) from the kernel's table.
    assert "_rq[" in kernels and "mcuc_dsp_rdbpot_c(mcuc_dsp_relu_srdhm(" in kernels
    assert "mcuc_dsp_rdbpot_c(mcuc_dsp_srdhm_small(" in kernels
    assert "mcuc_rdbpot(mcuc_dsp_srdhm_small(" in kernels  # small accumulators, no right shift: SMMULR
    for info in man["layers"]:
        node = info["layer"].split("_", 1)[1]
        if node in names and info["op"] == "maxpool":
            assert info["template"] == "cortex-m/maxpool.c.j2"
        elif node in names:
            assert info["template"].startswith("cortex-m/") and info["template"].split("/")[1] in DSP_TEMPLATES
            # The DSP definition of the layer's kernel (the portable one only under #else).
            assert f"MCUC_DSP_HOT void {info['function']}(" in kernels, info["layer"]


def test_smmulr_is_srdhm_on_small_accumulators():
    """mcuc_dsp_srdhm_small: SMMULR(2x, m) = floor((2x m + 2^31) / 2^32) equals rounding.srdhm
    for |x| < 2^30 and every multiplier >= 0 (Python integers: the identity, exactly)."""
    from compiler.ir import rounding as R

    rng = np.random.default_rng(5)
    lim = (1 << 30) - 1
    xs = np.concatenate([np.array([-lim, -lim + 1, -(1 << 29), -3, -2, -1, 0, 1, 2, 3, 1 << 29, lim - 1, lim]),
                         rng.integers(-lim, lim, 3000, endpoint=True)])
    ms = np.concatenate([np.array([0, 1, 1 << 30, (1 << 30) + 1, R.INT32_MAX - 1, R.INT32_MAX]),
                         rng.integers(1 << 30, R.INT32_MAX, 20, endpoint=True)])
    for m in ms:
        want = R.srdhm(xs, int(m))
        got = [(2 * int(x) * int(m) + (1 << 31)) >> 32 for x in xs]
        assert np.array_equal(want, np.array(got, np.int64)), int(m)


def test_rounding_shift_with_zero_point_is_rdbpot_plus_zp():
    """mcuc_dsp_rdbpot_zp / _c: (v + (v >> 31) + 2^(n-1) + zp 2^n) >> n (the (v >> 31) term only
    for signed v) equals rounding.rdbpot(v, n) + zp for |v| <= 2^30, 1 <= n <= 21,
    |zp| <= 255, and the sum stays inside int32 (Python integers: the identity, exactly)."""
    from compiler.ir import rounding as R

    rng = np.random.default_rng(11)
    lim = 1 << 30
    vs = np.concatenate([np.array([-lim, -lim + 1, -3, -2, -1, 0, 1, 2, 3, lim - 1, lim]),
                         rng.integers(-lim, lim, 4000, endpoint=True)])
    for n in range(1, 22):
        half = 1 << (n - 1)
        vs_n = np.concatenate([vs, np.array([k * (1 << n) + d for k in (-5, -1, 0, 1, 5) for d in (-half, half, half - 1)])])
        for zp in (-255, -128, -1, 0, 1, 127, 255):
            want = R.rdbpot(vs_n, n) + zp
            total = [int(v) + (-1 if v < 0 else 0) + half + zp * (1 << n) for v in vs_n]
            assert all(-(1 << 31) <= t < (1 << 31) for t in total)
            assert np.array_equal(want, np.array([t >> n for t in total], np.int64)), (n, zp)


@pytest.mark.parametrize("seed", [0, 1])
def test_layers_bit_exact_unicorn(seed, tmp_path):
    need_arm_toolchain()
    g, dsp = layer_cases(seed)
    man, _, bad = run_and_compare(g, tmp_path, seed=seed)
    assert not bad
    _check_dsp_used(man, tmp_path / "proj", dsp)


def test_layers_bit_exact_clang(tmp_path, monkeypatch):
    """Built by clang (PyPI's ziglang): the hot blocks take their C form there (clang cannot give
    the 2x3 asm block its 14 registers), bit-exact as well."""
    need_arm_toolchain()
    from compiler.codegen import toolchain

    if not toolchain.zig_available():
        pytest.skip("the ziglang package is not installed (pip install ziglang)")
    monkeypatch.setenv("MCUC_TOOLCHAIN", "zig")
    g, _ = layer_cases(4)
    man, _, bad = run_and_compare(g, tmp_path, seed=4)
    assert man["toolchain"].startswith("zig cc") and not bad


@pytest.mark.qemu
def test_layers_bit_exact_qemu(tmp_path):
    need_arm_toolchain()
    need_qemu()
    g, _ = layer_cases(2)
    _, run, bad = run_and_compare(g, tmp_path, seed=2, sim="qemu")
    assert run.simulator == "qemu" and not bad


def test_warning_clean_and_portable_without_dsp(tmp_path):
    """-Wall -Wextra -Werror for the board's flags, and for a Cortex-M3 (no DSP extension) the
    same sources compile to the portable kernels."""
    need_arm_toolchain()
    g, _ = layer_cases(3)
    proj = tmp_path / "proj"
    man = generate_project(g, load_board("stm32f4-discovery"), proj, model_name="dsp3", model_sha256="0" * 64)
    tc = toolchain.select(load_board("stm32f4-discovery"))
    flags = " ".join([*tc.cflags, *STRICT[1:]])
    r = subprocess.run(["make", "-B", "PROFILE=1", f"CFLAGS={flags}",
                        *[f"{k}={v}" for k, v in tc.make_vars.items() if k != "CFLAGS"]],
                       check=False, cwd=proj, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    gcc = shutil.which("arm-none-eabi-gcc")
    if gcc is None:
        pytest.skip("arm-none-eabi-gcc not installed (the Cortex-M3 check needs it)")
    src = proj / f"{man['model']}_kernels.c"
    r = subprocess.run([gcc, "-mcpu=cortex-m3", "-mthumb", "-O2", *STRICT, "-I.", "-S", "-o", "-", src.name],
                       check=False, cwd=proj, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "smlad" not in r.stdout and "sxtb16" not in r.stdout


@pytest.mark.parametrize("board", ["stm32f4-discovery", "nucleo-l4r5zi"])
@pytest.mark.parametrize("name", MLPERF_MODELS)
def test_mlperf_bit_exact_with_dsp_kernels(name, board, tmp_path):
    path = mlperf_path(name)
    need_arm_toolchain()
    from compiler.pipeline import compile_model

    g = compile_model(path)
    io = np.load(path.parent / f"{name}_io.npz")
    x, want = io["x_int8"][:2], io["y_tflm"][:2]
    man = generate_project(g, load_board(board), tmp_path, model_name=name, model_sha256="0" * 64)
    used = {t.split("/")[1] for t in man["templates"].values() if t.startswith("cortex-m/")}
    assert used & DSP_TEMPLATES
    t_in, t_out = man["inputs"][0], man["outputs"][0]
    feeds = {t_in["graph_name"]: x.reshape((-1,) + tuple(t_in["shape"][1:]))}
    run = runner.run_firmware(tmp_path, feeds, sim="unicorn", fw=firmware.build_firmware(tmp_path))
    assert np.array_equal(run.outputs[t_out["graph_name"]].reshape(want.shape), want)


def test_pre_extended_pointwise_weights_read_back(tmp_path):
    """For the cortex-m family lowering stores 1x1 weights as int16 (w0, w2, w1, w3) groups; the
    portable loader mcuc_ld_s8x (the kernels' #else path) reads them back in the original order,
    and other families keep the plain int8 array."""
    from compiler import resources
    from compiler.codegen.lower import lower

    b = Builder(7, "ext")
    b.out(b.conv(h=8, w=8, c=12, o=5, k=(1, 1)))  # >= lower.PRE_EXTEND_MIN_PIXELS output pixels
    for families, ld in ((["cortex-m", "generic"], "mcuc_ld_s8x"), (["generic"], "mcuc_ld_s8")):
        prog = lower(b.g, "ext", families=families)
        layer = next(l for l in prog.layers if l.template == "conv2d_1x1.c.j2")
        assert layer.params["ld"] == ld
    w = next(n for n in b.g.nodes if n.op == "conv2d").inputs[1].const.reshape(-1)
    arr = next(a for a in lower(b.g, "ext", families=["cortex-m", "generic"]).arrays if a.ctype == "int16_t")
    src = tmp_path / "ld.c"
    src.write_text('#include <stdio.h>\n#include <stdint.h>\n#include "mcuc_pack.h"\n'
                   f"static const int16_t w[{arr.data.size}] = {{{', '.join(str(int(v)) for v in arr.data)}}};\n"
                   f'int main(void) {{ for (int32_t i = 0; i < {w.size}; ++i) printf("%d\\n", (int)mcuc_ld_s8x(w, i)); return 0; }}\n')
    exe = tmp_path / "ld"
    inc = resources.runtime_dir() / "include"
    r = subprocess.run(["cc", *STRICT, f"-I{inc}", str(src), "-o", str(exe)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    got = [int(v) for v in subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.split()]
    assert got == [int(v) for v in w]


def test_flash_spent_for_speed_is_bounded_by_the_board_flash():
    """Whole-add tables (64 KB each) and pre-extended weights are a share of the board's flash:
    a 1 MB part takes the add table, a 128 KB part (a quarter is 32 KB) keeps the operand tables."""
    from compiler.codegen.lower import lower

    b = Builder(3, "budget")
    b.out(b.add(b.inp((1, 16, 16, 8)), b.inp((1, 16, 16, 8)), "tflite", (1, 16, 16, 8)))
    fam = ["cortex-m", "generic"]
    big = next(l for l in lower(b.g, "budget", families=fam, flash_bytes=1 << 20).layers if l.node.op == "add")
    small = next(l for l in lower(b.g, "budget", families=fam, flash_bytes=128 << 10).layers if l.node.op == "add")
    assert big.params["LUT"] and not small.params["LUT"]
