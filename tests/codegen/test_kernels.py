"""Every kernel template, compiled and run on the host, equals the reference interpreter bit for bit.

One project holds ~65 randomized layers as independent branches (convolutions of every variant
with strides, dilations, asymmetric pads, groups, int4 and zero-point weights; dense; add in
both modes with broadcast; mul; pools; softmax in both modes; lut; requantize; clamp; concat;
pad; transpose; reshape; per-tensor and per-channel; dyadic, single and shift requantization;
int8 and uint8), built once per compiler with -Wall -Wextra -Werror, and once with ASan+UBSan.
"""

from __future__ import annotations

import numpy as np
import pytest

from compiler import resources
from compiler.codegen import generate_project
from compiler.sim import run_host, run_host_detailed

from ._graphs import chain_graph, layer_zoo, random_inputs, reference
from ._tools import SANITIZE, STRICT, compilers, have, sanitizers_work

SAMPLES = 3
PROJECT_TEMPLATES = {"_macros.j2", "model.h.j2", "model.c.j2", "kernels.h.j2", "kernels.c.j2", "model_io.h.j2", "Makefile.j2"}


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    g = layer_zoo(seed=0)
    out = tmp_path_factory.mktemp("zoo")
    manifest = generate_project(g, "host", out, model_name="zoo", model_sha256="0" * 64)
    feeds = random_inputs(g, SAMPLES, seed=1)
    return g, out, manifest, feeds, reference(g, feeds)


def _compare(g, got, ref):
    assert set(got) == set(ref)
    bad = []
    for v in g.outputs:
        if not np.array_equal(got[v.name], ref[v.name]):
            diff = np.abs(got[v.name].astype(np.int64) - ref[v.name].astype(np.int64))
            bad.append(f"{v.producer.op} {v.name}: {int((diff > 0).sum())} elements differ, max {int(diff.max())}")
        assert got[v.name].dtype == ref[v.name].dtype
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("cc", compilers())
def test_zoo_bit_exact(zoo, cc):
    g, out, _, feeds, ref = zoo
    got = run_host(out, feeds, cc=cc, cflags=" ".join(STRICT + ["-O2"]))
    _compare(g, got, ref)


def test_zoo_bit_exact_sanitized(zoo):
    cc = "gcc" if have("gcc") else "clang"
    if not sanitizers_work(cc):
        pytest.skip(f"{cc} cannot build with ASan/UBSan here")
    g, out, _, feeds, ref = zoo
    got = run_host(out, feeds, cc=cc, cflags=" ".join(STRICT + SANITIZE + ["-O1"]))
    _compare(g, got, ref)


def test_every_generic_template_is_exercised(zoo):
    _, _, manifest, _, _ = zoo
    used = {p.split("/", 1)[1] for p in manifest["templates"].values()}
    kernels = {p.name for p in (resources.templates_dir() / "generic").glob("*.j2")} - PROJECT_TEMPLATES
    assert kernels - used == set()
    variants = {layer["function"].split("_zoo_")[0] for layer in manifest["layers"] if layer["function"]}
    for name in ("mcuc_conv2d_im2col_s8", "mcuc_conv2d_im2col_u8", "mcuc_conv2d_dw_s8", "mcuc_conv2d_1x1_s8",
                 "mcuc_conv2d_im2col_s8_ws4", "mcuc_dense_u8", "mcuc_dense_s8_ws4", "mcuc_add_tflite_s8", "mcuc_add_shift_s8",
                 "mcuc_softmax_exact_u8", "mcuc_avgpool_rq_s8"):
        assert name in variants, name


def test_chain_in_place_alias_and_profile(tmp_path):
    """A small network: in-place reuse and zero-copy reshape happen, results stay exact, and the
    profiling build reports every layer."""
    g = chain_graph()
    manifest = generate_project(g, "host", tmp_path, model_name="chain", model_sha256="1" * 64)
    layers = {layer["op"]: layer for layer in manifest["layers"]}
    assert layers["reshape"]["alias"] and layers["reshape"]["template"] == "alias"
    assert layers["clamp"]["inplace"] and layers["add"]["inplace"]
    mem = manifest["memory"]
    assert mem["lower_bound"] <= mem["arena_bytes"] < mem["sum_of_tensors"]
    feeds = random_inputs(g, 4, seed=3)
    run = run_host_detailed(tmp_path, feeds, cflags=" ".join(STRICT + ["-O2"]), profile=True)
    _compare(g, run.outputs, reference(g, feeds))
    assert run.result["status"] == "PASS" and run.result["samples"] == "4"
    assert len(run.layer_cycles) == len(manifest["layers"])
