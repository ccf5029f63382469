"""``mcuc profile``: a self-contained HTML report (with PNG charts) of one model on one board."""

from .report import profile

__all__ = ["profile"]
