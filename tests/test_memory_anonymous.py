"""The anonymous-memory figure grows with heap arrays but not with a mapped file's pages."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from bench.core.memory import anonymous_bytes, uss_bytes

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/smaps_rollup").exists() or sys.platform != "linux",
    reason="needs /proc/self/smaps_rollup (Linux)",
)

SIZE = 64 * 1024 * 1024


def test_mapped_file_pages_not_counted(tmp_path: Path) -> None:
    path = tmp_path / "data.f32"
    np.ones(SIZE // 4, dtype=np.float32).tofile(path)
    before_anon, before_uss = anonymous_bytes(), uss_bytes()
    mapped = np.memmap(path, dtype=np.float32, mode="r")
    total = float(mapped.sum(dtype=np.float64))  # touches every page
    assert total == SIZE // 4
    grew_anon = anonymous_bytes() - before_anon
    grew_uss = uss_bytes() - before_uss
    assert grew_uss > SIZE // 2  # the file pages are resident and USS sees them
    assert grew_anon < SIZE // 8  # the anonymous figure does not
    del mapped


def test_heap_array_counted() -> None:
    """In a fresh process: inside the test suite, freed memory that the allocator keeps
    resident can serve the new array without the anonymous figure moving."""
    import subprocess

    code = (
        "import numpy as np\n"
        "from bench.core.memory import anonymous_bytes\n"
        "before = anonymous_bytes()\n"
        f"heap = np.ones({SIZE // 4}, dtype=np.float32)\n"
        "print(anonymous_bytes() - before)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)
    assert int(out.stdout.strip()) > SIZE // 2
