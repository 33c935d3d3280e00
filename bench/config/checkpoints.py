"""Fine-tuning runs as the experiment sees them: their folder, manifest and checkpoint names,
and the ``weights: {finetune: RUN, epochs: [...]}`` sweep of one extractor.

``bench finetune`` (bench.finetune, a layer above) writes the folder; an experiment (this
layer) reads it. The names live here, once, so both sides agree: ``<run>/epoch_<n>.pth``
(``{'encoder', 'head', ...}``; epoch 0 = the weights before training) and
``<run>/manifest.json`` listing every finished epoch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from bench.core.errors import BenchError
from bench.core.options import StrictInt, StrictOptions, validate_section
from bench.core.paths import results_root

MANIFEST = "manifest.json"
#: runs named by a bare name live here, under the results root
RUNS_FOLDER = "finetune"


def checkpoint_name(epoch: int) -> str:
    return f"epoch_{epoch}.pth"


def runs_root() -> Path:
    return results_root() / RUNS_FOLDER


def run_folder(spec: str | Path, base_dir: Path | None = None) -> Path:
    """A bare name (``finetune-mini``) is a run under the results root; anything with a
    path separator, or starting with ``.`` / ``~``, is a folder (relative: to ``base_dir``)."""
    text = str(spec)
    if "/" not in text and "\\" not in text and not text.startswith((".", "~")):
        return runs_root() / text
    path = Path(text).expanduser()
    return path if path.is_absolute() or base_dir is None else base_dir / path


def read_manifest(folder: Path, what: str) -> dict[str, Any]:
    path = folder / MANIFEST
    if not path.is_file():
        raise BenchError(f"{what}: {path} not found (run `bench finetune` first, or give "
                         "the epochs explicitly)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BenchError(f"{what}: {path} is not a readable manifest ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("epochs"), list):
        raise BenchError(f"{what}: {path}: expected a mapping with an epochs list")
    return data


def manifest_epochs(manifest: dict[str, Any]) -> list[int]:
    return sorted(int(e["epoch"]) for e in manifest["epochs"])


class CheckpointSweep(StrictOptions):
    """``weights:`` of an extractor that expands into one extractor per checkpoint."""

    finetune: str = Field(description="run folder of `bench finetune` (or a bare run name)")
    #: epochs to evaluate; ``all`` = every epoch in the run's manifest
    epochs: list[StrictInt] | Literal["all"] = "all"


_EPOCH_SUFFIX = "-epoch"


def sweep_label(name: str, run: Path, epoch: int) -> str:
    """The feature set's name in results: one per (extractor, run, epoch)."""
    return f"{name}@{run.name}{_EPOCH_SUFFIX}{epoch}"


def sweep_series(label: str) -> str:
    """The swept extractor a checkpoint's label belongs to (its label without the epoch)."""
    head, sep, tail = label.rpartition(_EPOCH_SUFFIX)
    return head if sep and tail.isdigit() else label


def expand_weights_sweep(name: str, options: dict[str, Any], base_dir: Path, source: Path,
                         where: str) -> list[tuple[str, int, dict[str, Any]]] | None:
    """(label, epoch, options with a weights file) per checkpoint, or None when ``weights``
    is not a sweep. Explicit epochs need no manifest yet (the run may not exist when the
    experiment is validated); when a manifest exists, every epoch must be in it."""
    raw = options.get("weights")
    if not isinstance(raw, dict):
        return None
    sweep = validate_section(CheckpointSweep, raw, source, f"{where}.weights")
    folder = run_folder(sweep.finetune, base_dir)
    what = f"{source}: {where}.weights.finetune"
    if sweep.epochs == "all":
        epochs = manifest_epochs(read_manifest(folder, what))
        if not epochs:
            raise BenchError(f"{what}: {folder / MANIFEST} lists no finished epoch yet")
    else:
        epochs = list(dict.fromkeys(sweep.epochs))
        if not epochs or min(epochs) < 0:
            raise BenchError(f"{source}: {where}.weights.epochs: expected non-negative epochs")
        if (folder / MANIFEST).is_file():
            known = set(manifest_epochs(read_manifest(folder, what)))
            missing = [e for e in epochs if e not in known]
            if missing:
                raise BenchError(f"{source}: {where}.weights.epochs: epoch {missing[0]} is "
                                 f"not in {folder / MANIFEST} (it has {sorted(known)})")
    return [(sweep_label(name, folder, e), e,
             {**options, "weights": str(folder / checkpoint_name(e))}) for e in epochs]
