"""User-facing errors.

Anything raised as ``BenchError`` is bad input or a broken environment, not a bug:
the CLI prints its message as one line and exits non-zero (tracebacks only with
``--debug``). Messages must name the file, field or item and what was expected.
"""


class BenchError(Exception):
    """An error caused by the user's input or environment, reported as one line."""


class MissingDependencyError(BenchError):
    """An optional dependency is not installed; the message says which extra to install."""

    def __init__(self, package: str, extra: str, purpose: str = "") -> None:
        what = f" for {purpose}" if purpose else ""
        super().__init__(
            f"{package} is required{what} but not installed: pip install 'featbench[{extra}]'"
        )
