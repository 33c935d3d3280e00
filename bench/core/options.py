"""The strict base of every options model, and the one formatter of its errors.

A misspelled key is an error with its path, never a silently ignored setting; every
section of every file reports a validation error the same way:
``<file>: <key.path>: <what was expected>``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Strict, ValidationError

from bench.core.errors import BenchError


class StrictOptions(BaseModel):
    """Base for option models: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


#: an int that refuses ``true`` (pydantic's lax mode reads a bool as 0 / 1)
StrictInt = Annotated[int, Strict()]


_T = TypeVar("_T", bound=BaseModel)


def _user_path(loc: tuple[Any, ...], raw: Any) -> list[str]:
    """The location as the user wrote it: pydantic adds union-member tags (the ``dbscan``
    of a discriminated union, ``str`` / ``list[int]``) that are no key of the input;
    walking the input drops them."""
    if raw is None:
        return [str(p) for p in loc]
    out: list[str] = []
    node: Any = raw
    for i, part in enumerate(loc):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        elif not (isinstance(node, dict) and i == len(loc) - 1):
            continue  # a union tag; the last part under a mapping is a missing key: kept
        out.append(str(part))
    return out


def format_validation_error(
    source: Path | str, exc: ValidationError, prefix: str = "", raw: Any = None
) -> str:
    """One line for a ValidationError: an unknown key first (``epz: unknown key`` explains
    the ``eps: Field required`` beside it), then the count of the others."""
    errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
    err = errors[0]
    loc = [*(p for p in prefix.split(".") if p), *_user_path(tuple(err["loc"]), raw)]
    msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{source}: {'.'.join(loc) or '(top level)'}: {msg}{more}"


def validate_section(model: type[_T], raw: Any, source: Path | str, where: str = "") -> _T:
    """``model.model_validate(raw)``, a ValidationError becoming one BenchError line."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise BenchError(format_validation_error(source, exc, where, raw)) from None
