"""Boards: small schema-checked YAML files ``boards/<vendor>/<board>/board.yaml``.

A board names its core and ISA features, the template families code generation searches (in
override order, most specific first, ``generic`` last), its memories, clock, toolchain, console,
flash tool and how each simulator runs it. Code generation reads only ``families`` and
``toolchain`` today; the rest is the schema the firmware and simulator work fills in, so that
board files written now stay valid then.
"""

from __future__ import annotations

import os
import re
from functools import cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from . import resources
from .errors import McucError

_SIZE = re.compile(r"^\s*(\d+)\s*([KMG]?)(?:i?B)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
_NAME = re.compile(r"^[a-z0-9][a-z0-9_\-]*$")


def _parse_size(v):
    """Accept ints and '256K' / '1M' / '0x20000' strings."""
    if isinstance(v, bool):
        raise ValueError("must be a size in bytes")
    if isinstance(v, int):
        return v
    if isinstance(v, str):
        s = v.strip()
        if s.lower().startswith("0x"):
            return int(s, 16)
        m = _SIZE.match(s)
        if m:
            return int(m.group(1)) * _UNITS[m.group(2).upper()]
    raise ValueError(f"must be a size in bytes (e.g. 262144, '256K', '0x40000'), got {v!r}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Memory(_Strict):
    name: str
    kind: Literal["flash", "ram", "rom"]
    origin: int = Field(ge=0)
    size: int = Field(gt=0)

    _sizes = field_validator("origin", "size", mode="before")(_parse_size)


class ZigFallback(_Strict):
    """The clang inside PyPI's ``ziglang`` package: used when ``cc`` is not installed, so that
    ``pip install mcuc`` alone can build firmware."""

    target: str  # e.g. 'thumb-freestanding-eabihf'
    cpu: str  # e.g. 'cortex_m4'
    cflags: list[str] = []
    ldflags: list[str] = []


class Toolchain(_Strict):
    # ``${VAR:-default}`` takes VAR from the environment when it is set (see Board.cc()).
    cc: str
    cflags: list[str] = []
    ldflags: list[str] = []
    objcopy: str | None = None
    size: str | None = None
    # What ``make`` builds; ``{model}`` is the model's C identifier.
    target: str = "{model}_host"
    zig: ZigFallback | None = None


class RegSet(_Strict):
    """One read-modify-write of a peripheral register: ``*addr = (*addr & ~clear) | set``."""

    addr: int
    clear: int = 0
    set: int = 0

    _ints = field_validator("addr", "clear", "set", mode="before")(lambda v: _parse_size(v))


class Console(_Strict):
    kind: Literal["stdio", "uart", "semihosting", "rtt"]
    device: str | None = None  # e.g. 'USART2'
    base: int | None = None  # peripheral address for bare-metal drivers
    baud: int | None = None
    clock_hz: int | None = Field(default=None, gt=0)  # the UART's kernel clock at reset (baud divider)
    # Register offsets a simulator without a model of this UART needs (Unicorn): bytes written
    # to ``data_offset`` are console output; reads of ``status_offset`` return ``status_idle``.
    data_offset: int | None = None
    status_offset: int | None = None
    status_idle: int | None = None
    init: list[RegSet] = []  # clock and pin set-up before the UART itself, in order

    _ints = field_validator("base", "data_offset", "status_offset", "status_idle", mode="before")(
        lambda v: _parse_size(v) if v is not None else None)


class FlashTool(_Strict):
    tool: Literal["openocd", "pyocd", "st-flash"]
    # Arguments after the tool; ``{elf}``, ``{bin}``, ``{hex}`` and ``{flash_origin}`` are
    # filled in by ``mcuc flash``.
    args: list[str] = []


class QemuRun(_Strict):
    arch: str = "arm"  # the emulator is qemu-system-<arch>: 'arm', 'riscv32'
    machine: str
    cpu: str | None = None
    args: list[str] = []
    serial_index: int = Field(default=0, ge=0)  # which -serial of the machine is the console UART
    # The emulated machine's memories when they differ from the board's (a stand-in machine):
    # firmware that does not fit them cannot run in QEMU.
    memories: list[Memory] = []
    stands_in: str | None = None  # the chip QEMU emulates instead of the board's, for reports


class RenodeRun(_Strict):
    # A platform description shipped with Renode (e.g. platforms/cpus/stm32f4.repl); None when
    # ``overlay`` describes the whole machine.
    platform: str | None = None
    script: str | None = None
    uart: str | None = None  # the console peripheral's name in the platform, e.g. sysbus.usart2 (needed to run)
    # Lines of a .repl overlay Renode loads after the platform (peripherals it lacks, e.g. DWT).
    overlay: list[str] = []


class UnicornRun(_Strict):
    arch: str  # 'arm' / 'riscv'
    mode: list[str] = []
    cpu_model: str | None = None
    memory_map: list[Memory] = []


class Simulators(_Strict):
    host: bool = False  # the generated project runs natively (compiler.sim.host)
    qemu: QemuRun | None = None
    renode: RenodeRun | None = None
    unicorn: UnicornRun | None = None


class Cluster(_Strict):
    """A compute cluster beside the board's main core (e.g. GAP-8's 8 RI5CY cores with their
    shared TCDM). Described for the boards that have one; code generation does not use it yet."""

    cores: int = Field(gt=0)
    core: str
    isa: list[str] = []
    clock_hz: int | None = Field(default=None, gt=0)
    memories: list[Memory] = []


class Board(_Strict):
    name: str
    vendor: str
    description: str = ""
    core: str  # e.g. 'cortex-m4', 'rv32imc', 'host'
    chip: str | None = None  # e.g. 'STM32F407VG'
    stack_bytes: int = Field(default=8192, gt=0)  # firmware main stack, reserved in RAM
    isa: list[str] = []  # features: 'dsp', 'fpu', 'xpulp', ...
    families: list[str]  # template families, most specific first
    memories: list[Memory] = []
    clock_hz: int | None = Field(default=None, gt=0)
    toolchain: Toolchain
    console: Console | None = None
    flash: FlashTool | None = None
    simulators: Simulators = Simulators()
    cluster: Cluster | None = None

    @field_validator("name", "vendor")
    @classmethod
    def _ident(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError(f"{v!r} must be lowercase letters, digits, '-' or '_'")
        return v

    @field_validator("families")
    @classmethod
    def _families(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("needs at least one template family")
        if v[-1] != "generic":
            raise ValueError("must end with 'generic' (the portable templates every op has)")
        if len(set(v)) != len(v):
            raise ValueError("lists a family twice")
        root = resources.templates_dir()
        for f in v:
            if not _NAME.match(f) or not (root / f).is_dir():
                raise ValueError(f"unknown template family {f!r} (no templates/{f}/)")
        return v

    @model_validator(mode="after")
    def _memories(self):
        names = [m.name for m in self.memories]
        if len(set(names)) != len(names):
            raise ValueError("memories: two regions share a name")
        return self

    @property
    def qualified(self) -> str:
        return f"{self.vendor}/{self.name}"

    def cc(self) -> str:
        return expand_env(self.toolchain.cc)

    def memory(self, kind: str) -> list[Memory]:
        return [m for m in self.memories if m.kind == kind]


_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_env(s: str, env=None) -> str:
    """Expand ``${VAR}`` and ``${VAR:-default}`` (default when VAR is unset or empty in ``env``,
    the process environment unless given)."""
    env = os.environ if env is None else env

    def sub(m):
        val = env.get(m.group(1))
        return val if val else (m.group(2) or "")

    return _ENV.sub(sub, s)


def _board_files() -> dict[str, Path]:
    root = resources.boards_dir()
    files: dict[str, Path] = {}
    for p in sorted(root.glob("*/*/board.yaml")):
        if p.parent.name in files:
            raise McucError(f"board name {p.parent.name!r} is used twice: {_rel(files[p.parent.name])} and {_rel(p)}")
        files[p.parent.name] = p
    return files


def list_boards() -> list[str]:
    """Board names (the directory name of each board.yaml), sorted."""
    return sorted(_board_files())


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(resources.data_root()))
    except ValueError:
        return str(path)


def _field(loc) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"


def load_board_file(path: Path) -> Board:
    """Parse and validate one board.yaml; any problem is one McucError naming the file and field."""
    where = _rel(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as e:
        raise McucError(f"cannot read board file: {str(e).splitlines()[0]}", where=where) from None
    if not isinstance(data, dict):
        raise McucError("a board file is a YAML mapping", where=where)
    try:
        board = Board.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        msg = err["msg"].removeprefix("Value error, ")
        more = f" (and {len(e.errors()) - 1} more)" if len(e.errors()) > 1 else ""
        raise McucError(f"{_field(err['loc'])}: {msg}{more}", where=where) from None
    if path.parent.name != board.name or path.parent.parent.name != board.vendor:
        raise McucError(f"name/vendor ({board.vendor}/{board.name}) must match the directory "
                        f"{path.parent.parent.name}/{path.parent.name}", where=where)
    return board


@cache
def _load_cached(path: str, mtime: float) -> Board:
    return load_board_file(Path(path))


def load_board(name: str) -> Board:
    """The board called ``name`` ('host') or ``vendor/name`` ('generic/host')."""
    files = _board_files()
    key = name.split("/")[-1] if name.count("/") == 1 else name
    path = files.get(key)
    if path is None or ("/" in name and path.parent.parent.name != name.split("/")[0]):
        avail = ", ".join(sorted(files)) or "none"
        raise McucError(f"unknown board {name!r}; available boards: {avail}")
    return _load_cached(str(path), path.stat().st_mtime)
