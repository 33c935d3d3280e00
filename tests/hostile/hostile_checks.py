"""The two checks every hostile case makes: one clear error line, and which files
appeared under the test's roots."""

from __future__ import annotations

from pathlib import Path


def one_error_line(result) -> str:  # noqa: ANN001 - a click Result
    """The single line starting with "error" in a CLI result; no traceback allowed."""
    assert "Traceback" not in result.output
    lines = [ln for ln in result.output.strip().splitlines() if ln.startswith("error")]
    assert len(lines) == 1, result.output
    return lines[0]


def tree(root: Path) -> set[str]:
    """Every path below ``root``, relative: compare before and after to see what was written."""
    return {str(p.relative_to(root)) for p in root.rglob("*")}
