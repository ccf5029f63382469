"""Running generated projects: natively on the host (host.py), or as firmware in a simulator
(runner.py: QEMU, Unicorn, Renode; see docs/simulators.md)."""

from .host import build_host, run_host, run_host_detailed

__all__ = ["build_host", "run_host", "run_host_detailed"]
