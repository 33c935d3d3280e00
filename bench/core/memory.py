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


def anonymous_bytes() -> int:
    """Private anonymous memory (heap, malloc'd arrays), excluding file-backed pages.

    Pages of a memory-mapped data file are reclaimable page cache, not index memory, so
    index memory measured as growth of this figure does not count mapped data read during
    a build (USS counts them once touched). Linux only: elsewhere falls back to USS.
    """
    try:
        with open("/proc/self/smaps_rollup", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("Anonymous:"):
                    return int(line.split()[1]) * 1024
    except OSError:  # pragma: no cover - non-Linux
        pass
    return uss_bytes()  # pragma: no cover - non-Linux
