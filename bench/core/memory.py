"""Process memory figures, shared by the run stage and wrappers that measure their parts."""

from __future__ import annotations

import platform
import resource

import psutil


def uss_bytes() -> int:
    """Unique set size: memory that would be freed if this process exited."""
    try:
        return int(psutil.Process().memory_full_info().uss)
    except (psutil.AccessDenied, AttributeError):  # pragma: no cover - platform dependent
        return int(psutil.Process().memory_info().rss)


def peak_rss_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if platform.system() == "Darwin" else peak * 1024)
