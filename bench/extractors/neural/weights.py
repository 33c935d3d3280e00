"""Local weight files: safe loading, strict fitting with one-line errors, content hashes.

Files are read with ``torch.load(..., weights_only=True)``: a checkpoint is untrusted
input and must never be unpickled into arbitrary objects. Accepted contents: a
state dict (name -> tensor), or a dict holding one under ``state_dict``, or a
fine-tuning checkpoint ``{'encoder': state dict, 'head': ..., ...}`` (its encoder).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from bench.core.errors import BenchError
from bench.extractors.neural.pipeline import require_torch

_SHA256: dict[tuple[str, int, int], str] = {}


def sha256_file(path: Path, what: str) -> str:
    """SHA-256 of the file, streamed once per (path, size, mtime) in this process: weight
    files are hundreds of MB and the fingerprint is asked for more than once."""
    try:
        st = os.stat(path)
    except OSError:
        raise BenchError(f"{what}: weights: file {path} not found") from None
    key = (str(Path(path).resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA256:
        with open(path, "rb") as f:
            _SHA256[key] = hashlib.file_digest(f, "sha256").hexdigest()
    return _SHA256[key]


def load_state_dict(path: Path, what: str) -> dict[str, Any]:
    """The encoder's state dict (a converted file's ``head.*`` keys included)."""
    return load_weights(path, what)[0]


def load_weights(path: Path, what: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(state dict, head state or None). A fine-tuning checkpoint ``{'encoder': ...,
    'head': ...}`` gives its encoder and its head (keys as the head module names them);
    any other layout gives the whole state dict and no separate head."""
    torch = require_torch()
    if not Path(path).is_file():
        raise BenchError(f"{what}: weights: file {path} not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - unpickling / zip / format errors alike
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BenchError(f"{what}: weights: {path} is not a weights-only torch checkpoint "
                         f"({first[:200]})") from None
    head = None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    elif isinstance(obj, dict) and isinstance(obj.get("encoder"), dict):
        head = obj.get("head") if isinstance(obj.get("head"), dict) else None
        obj = obj["encoder"]
    for state in (obj, head) if head is not None else (obj,):
        if not isinstance(state, dict) or not state or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
        ):
            raise BenchError(f"{what}: weights: {path} does not hold a state dict "
                             "(a mapping of parameter names to tensors)")
    return obj, head


def _names(keys: list[str], limit: int = 3) -> str:
    more = f", ... ({len(keys)} in all)" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def fit(model: Any, state: dict[str, Any], path: Path, what: str, *,
        assign: bool = False) -> None:
    """``load_state_dict(strict=True)``, with the mismatch summarised in one line.
    ``assign``: adopt the file's tensors (for a model built on the meta device)."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
             if k in state and tuple(state[k].shape) != tuple(v.shape)]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {_names(missing)}")
        if unexpected:
            parts.append(f"unexpected {_names(unexpected)}")
        if wrong:
            parts.append(f"wrong shape (file vs model) {_names(wrong)}")
        raise BenchError(f"{what}: weights {path} do not fit this model: " + "; ".join(parts)
                         + " (converted for another model?)")
    model.load_state_dict(state, strict=True, assign=assign)
