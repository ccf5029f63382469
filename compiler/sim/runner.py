"""One interface over the firmware simulators: ``run_firmware(project, inputs, sim=...)``.

``auto`` picks Renode when ``renode`` is on PATH and the board describes a Renode platform, else
QEMU when it is installed and the board has a QEMU machine that can hold the firmware, else
Unicorn (always available: it is a Python dependency). The choice and the reason are returned.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..errors import McucError
from . import cycles, firmware, qemu, renode, unicorn_run

SIMULATORS = ("auto", "renode", "qemu", "unicorn")
ENGINES = {"qemu": qemu, "unicorn": unicorn_run, "renode": renode}


def choose(fw: firmware.Firmware, sim: str, blob_len: int = 0) -> tuple[str, str]:
    """(simulator, why) for ``sim`` (one of SIMULATORS) on the firmware's board."""
    sims = fw.board.simulators
    if sim not in SIMULATORS:
        raise McucError(f"unknown simulator {sim!r}; choose from {', '.join(SIMULATORS)}")
    if sim != "auto":
        if getattr(sims, sim) is None:
            raise McucError(f"board {fw.board.name!r} has no {sim} description (simulators.{sim} in its board.yaml)")
        if not (ENGINES[sim].available(fw.board) if sim == "qemu" else ENGINES[sim].available()):
            raise McucError(f"{sim} is not installed" + ("" if sim != "renode" else " (renode is not on PATH)"))
        return sim, "requested"
    if sims.renode is not None and renode.available():
        return "renode", "auto: renode is installed"
    if sims.qemu is not None and qemu.available(fw.board):
        try:
            qemu.check_memory(fw, blob_len)
            return "qemu", "auto: renode not installed; qemu is, and the board has a QEMU machine"
        except McucError as e:
            why = f"auto: qemu cannot hold this firmware ({e})"
            if sims.unicorn is not None:
                return "unicorn", why
    if sims.unicorn is not None:
        return "unicorn", "auto: " + ("no QEMU machine for this board" if sims.qemu is None else
                                      f"{qemu.binary(fw.board)} not installed") + ("" if sims.renode is None else ", renode not installed")
    raise McucError(f"no simulator can run board {fw.board.name!r} here")


def run_firmware(project_dir, inputs: dict[str, np.ndarray], *, sim: str = "auto", timeout: float = 600,
                 fw: firmware.Firmware | None = None) -> firmware.FirmwareRun:
    """Build the project's firmware and run every sample through ``sim``; outputs by graph
    output name, per-inference instructions and estimated cycles, per-layer figures."""
    fw = fw or firmware.build_firmware(project_dir)
    man = fw.manifest
    n, samples = firmware.sample_stream(man, inputs)
    groups = firmware.sessions(fw, samples)
    name, why = choose(fw, sim, len(firmware.blob(groups[0])))
    engine = ENGINES[name]
    outs: dict[str, list[np.ndarray]] = {}
    layers = None
    ins = cyc = ins_run = cyc_run = 0
    console = []
    t0 = time.perf_counter()
    result: dict[str, str] = {}
    for grp in groups:
        r = engine.run(fw, firmware.blob(grp, semihost_exit=getattr(engine, "SEMIHOST_EXIT", True)), timeout=timeout)
        o, result = firmware.parse_console(r.console, man, len(grp), name)
        for k, v in o.items():
            outs.setdefault(k, []).append(v)
        console.append(r.console)
        if r.marks is None:  # Renode: executed instructions of the whole session only, no cycle model
            ins += r.instructions
            ins_run += r.instructions
            continue
        lay, i, c = firmware.attribute(man, r.marks, len(grp), name)
        ins, cyc = ins + i, cyc + c
        ins_run += r.marks[-1][0] if r.marks else r.instructions
        cyc_run += r.marks[-1][1] if r.marks else r.cycles
        if layers is None:
            layers = lay
        else:
            for a, b in zip(layers, lay):
                a["instructions"] += b["instructions"]
                a["cycles"] += b["cycles"]
    secs = time.perf_counter() - t0
    per = max(1, n)
    for li in layers or []:
        if li["cycles"] is None:
            continue
        li["instructions"] = round(li["instructions"] / per)
        li["cycles"] = round(li["cycles"] / per)
    outputs = {k: np.concatenate(v) for k, v in outs.items()}
    text = "".join(console)
    if layers is None:  # Renode: per-layer figures are the firmware's own DWT readings (Renode's clock)
        layers = firmware.firmware_layers(man, text, n)
    return firmware.FirmwareRun(outputs, result, name, fw.toolchain, man["board"], n, round(ins / per),
                                round(cyc / per), ins_run, cyc_run, layers, len(groups), secs, text, why,
                                fw.image_bytes)


def report(run: firmware.FirmwareRun, man: dict) -> dict:
    """The ``mcuc run --json`` object."""
    fl = man["flash"]
    macs = sum(li.get("macs", 0) for li in man["layers"])
    return {
        "board": run.board,
        "simulator": run.simulator,
        "simulator_choice": run.why,
        "toolchain": run.toolchain,
        "samples": run.samples,
        "sessions": run.sessions,
        "instructions": run.instructions,
        "cycles": run.cycles,
        "cycles_estimated": True,
        "cycle_model": cycle_model_text(run.board),
        "instructions_run": run.instructions_total,
        "cycles_run": run.cycles_total,
        "macs": macs,
        "cycles_per_mac": round(run.cycles / macs, 3) if macs and run.cycles else None,
        "arena_bytes": man["memory"]["arena_bytes"],
        # The built image when there is one; else weights + code + runtime as code generation measured them.
        "flash_bytes": run.image_bytes or (fl["total_bytes"] or 0) + (fl.get("runtime_bytes") or 0),
        "weights_bytes": fl["weights_bytes"],
        "seconds": round(run.seconds, 3),
        "layers": run.layers,
    }


def cycle_model_text(board_name: str) -> str:
    """Which timing model estimated a run's cycles, for reports."""
    from ..boards import load_board
    from . import riscv_cycles, riscv_unicorn

    if riscv_unicorn.is_riscv(load_board(board_name)):
        m = riscv_cycles.load_model()
        return f"estimated, RI5CY model ({m.name}, taken branch +{m.taken_branch_extra}, zero wait states)"
    model = cycles.load_model()
    return f"estimated, Cortex-M4 model ({model.name}, P={model.refill}, zero wait states)"


def project_manifest(project_dir) -> dict:
    return firmware.read_manifest(Path(project_dir))
