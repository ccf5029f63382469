"""C identifiers from untrusted names.

Every name that comes from a model (ONNX tensor, node and graph names) passes through here
before it reaches C or Jinja, including comments and string literals: the result is
``[A-Za-z][A-Za-z0-9_]*``, not a C keyword or reserved identifier, at most ``MAX_LEN`` long, and
unique within its ``Namer``. Nothing else a model supplies is ever emitted.
"""

from __future__ import annotations

import hashlib
import re

MAX_LEN = 40

C_KEYWORDS = frozenset("""
    auto break case char const continue default do double else enum extern float for goto if inline
    int long register restrict return short signed sizeof static struct switch typedef union
    unsigned void volatile while _Alignas _Alignof _Atomic _Bool _Complex _Generic _Imaginary
    _Noreturn _Static_assert _Thread_local asm fortran bool true false NULL main errno
    int8_t int16_t int32_t int64_t uint8_t uint16_t uint32_t uint64_t size_t
""".split())

_BAD = re.compile(r"[^A-Za-z0-9_]+")


def c_ident(raw: str, *, fallback: str = "t") -> str:
    """A safe C identifier derived from ``raw`` (not yet unique).

    Characters outside [A-Za-z0-9_] become '_'; leading underscores and digits get a letter
    prefix (identifiers starting with '_' are reserved in C); keywords get a suffix; long names
    are cut and keep a short hash of the full name so that cut names stay distinct.
    """
    s = _BAD.sub("_", raw if isinstance(raw, str) else "")
    s = re.sub(r"_+", "_", s).strip("_")
    if not s:
        s = fallback
    if s[0].isdigit():
        s = f"{fallback}_{s}"
    if s in C_KEYWORDS or s.lower().startswith("mcuc"):
        # 'mcuc' is the runtime's own prefix; a model name must not shadow it.
        s = f"{s}_"
    if len(s) > MAX_LEN:
        h = hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()[:8]
        s = f"{s[:MAX_LEN - 9].rstrip('_')}_{h}"
    return s


class Namer:
    """Hands out unique sanitized identifiers; the same key always gets the same name."""

    def __init__(self, reserved: set[str] | None = None):
        self._used: set[str] = set(reserved or ())
        self._by_key: dict[object, str] = {}

    def name(self, key: object, raw: str, *, fallback: str = "t") -> str:
        if key in self._by_key:
            return self._by_key[key]
        base = c_ident(raw, fallback=fallback)
        name, i = base, 1
        while name in self._used or name.lower() in self._used:
            i += 1
            name = f"{base}_{i}"
        self._used.add(name)
        self._used.add(name.lower())
        self._by_key[key] = name
        return name


def model_ident(model_name: str) -> str:
    """The model's C prefix and file stem: a lowercase identifier (file names must not clash
    on case-insensitive file systems)."""
    return c_ident(model_name.lower(), fallback="model")
