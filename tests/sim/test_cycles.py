"""The Cortex-M4 timing model: defined once in compiler/sim/cortex_m4.yaml, applied per
instruction class, and summed identically for QEMU's plugin and Unicorn (BlockCosts)."""

from __future__ import annotations

import capstone
import pytest

from compiler.sim import cycles

MD = capstone.Cs(capstone.CS_ARCH_ARM, capstone.CS_MODE_THUMB | capstone.CS_MODE_MCLASS)
MD.detail = True


def _costs(hexcode: str):
    model = cycles.load_model()
    out, prev = [], None
    for insn in MD.disasm(bytes.fromhex(hexcode), 0x1000):
        c, cond, name = cycles.classify(insn, prev, model)
        out.append((insn.mnemonic, c, cond))
        prev = name
    return out


def test_model_is_data():
    m = cycles.load_model()
    assert m.name == "cortex-m4-trm" and m.refill == 2 and m.default == 1
    assert {c["name"] for c in m.classes} >= {"load", "store", "multiply", "divide", "branch", "load_store_multiple"}


@pytest.mark.parametrize("code, want", [
    ("0a68", [("ldr", 2, False)]),                                   # ldr r2, [r1]
    ("0a684b68", [("ldr", 2, False), ("ldr", 1, False)]),            # second load pipelines
    ("0a6013684b68", [("str", 1, False), ("ldr", 1, False), ("ldr", 1, False)]),
    ("0a441368", [("add", 1, False), ("ldr", 2, False)]),             # add, then a load: 2
    ("21fb0232", [("smlad", 1, False)]),                             # smlad r2, r1, r2, r3
    ("91fbf2f0", [("sdiv", 7, False)]),
    ("80ee810a", [("vdiv.f32", 14, False)]),
    ("10b5", [("push", 3, False)]),                                  # 1 + N
    ("bde8f081", [("pop.w", 1 + 6 + 2, False)]),                     # 1 + N + P (loads PC)
    ("08bfbde8f081", [("it", 1, False), ("popeq.w", 7, True)]),      # conditional PC load
    ("fee7", [("b", 3, False)]),                                     # 1 + P
    ("00d0", [("beq", 1, True)]),                                    # +P when taken
    ("28b1", [("cbz", 1, True)]),
    ("7047", [("bx", 3, False)]),
])
def test_instruction_classes(code, want):
    assert _costs(code) == want


def test_block_costs_match_table():
    base = 0x1000
    code = bytes.fromhex("0a684b6808bfbde8f08100d0")
    table = bytearray(len(code) // 2)
    prev = None
    model = cycles.load_model()
    for insn in MD.disasm(code, base):
        c, cond, name = cycles.classify(insn, prev, model)
        table[(insn.address - base) // 2] = cycles.START | (cycles.COND if cond else 0) | c
        prev = name
    bc = cycles.BlockCosts(base, bytes(table), model.refill)
    n, cyc, cond, nxt = bc.block(base, len(code), code)
    assert (n, cyc, cond, nxt) == (5, 2 + 1 + 1 + 7 + 1, True, base + len(code))
