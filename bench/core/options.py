"""The strict base of every options model: a misspelled key is an error with its path,
never a silently ignored setting."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictOptions(BaseModel):
    """Base for option models: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")
