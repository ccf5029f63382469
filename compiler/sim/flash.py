"""Programming a real board: the command line of the flash tool the board file declares."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

from ..boards import Board
from ..errors import McucError


def flash_command(board: Board, project_dir, manifest: dict) -> list[str]:
    """The exact command ``mcuc flash`` runs: the board's tool and arguments with ``{elf}``,
    ``{bin}``, ``{hex}`` and ``{flash_origin}`` filled in."""
    if board.flash is None:
        raise McucError(f"board {board.name!r} declares no flash tool (flash: in its board.yaml)")
    d = Path(project_dir).resolve()
    elf = d / manifest["target"]
    flash = board.memory("flash")
    subst = {"elf": str(elf), "bin": str(elf.with_suffix(".bin")), "hex": str(elf.with_suffix(".hex")),
             "flash_origin": f"0x{flash[0].origin:08x}" if flash else "0x0"}
    try:
        return [board.flash.tool] + [a.format(**subst) for a in board.flash.args]
    except (KeyError, IndexError) as e:
        raise McucError(f"board {board.name!r}: flash.args uses an unknown placeholder {e}") from None


def needs_bin(cmd: list[str], manifest_target: str) -> bool:
    return any(a.endswith(Path(manifest_target).with_suffix(".bin").name) for a in cmd)


def flash(board: Board, project_dir, manifest: dict, *, dry_run: bool = False, timeout: float = 300) -> list[str]:
    cmd = flash_command(board, project_dir, manifest)
    if dry_run:
        return cmd
    if shutil.which(cmd[0]) is None:
        raise McucError(f"{cmd[0]} is not installed; the command would be: {shlex.join(cmd)}")
    from .firmware import build_firmware

    fw = build_firmware(project_dir)
    if needs_bin(cmd, manifest["target"]):
        objcopy = board.toolchain.objcopy or "arm-none-eabi-objcopy"
        r = subprocess.run([objcopy, "-O", "binary", str(fw.elf), str(fw.elf.with_suffix(".bin"))],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise McucError(f"{objcopy} failed: {r.stderr.strip()}")
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        err = (r.stderr or r.stdout).strip().splitlines()
        raise McucError(f"{cmd[0]} failed (exit {r.returncode}): {err[-1] if err else 'no message'}")
    return cmd
