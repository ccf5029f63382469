"""Running generated projects: natively on the host (host.py); simulators come later."""

from .host import build_host, run_host, run_host_detailed

__all__ = ["build_host", "run_host", "run_host_detailed"]
