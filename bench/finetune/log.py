"""The run's log: log.csv (one row per step; epoch rows carry the validation loss), plus
TensorBoard event files when ``tensorboard`` is installed. On resume the rows past the
last checkpoint (an epoch that was killed half-way) are dropped, so the curve continues
from the checkpoint without a duplicated stretch."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from bench.core.files import atomic_write_bytes

COLUMNS = ["epoch", "step", "loss", "lr", "images_per_s", "val_loss"]


class RunLog:
    def __init__(self, folder: Path, resume_epoch: int) -> None:
        self.path = folder / "log.csv"
        rows: list[dict[str, str]] = []
        if resume_epoch > 0 and self.path.is_file():
            with open(self.path, newline="", encoding="utf-8") as f:
                rows = [r for r in csv.DictReader(f) if int(r["epoch"]) <= resume_epoch]
        lines = [",".join(COLUMNS)] + [",".join(r.get(c, "") for c in COLUMNS) for r in rows]
        atomic_write_bytes(self.path, ("\n".join(lines) + "\n").encode())
        self._file = open(self.path, "a", newline="", encoding="utf-8")  # noqa: SIM115
        self._writer = csv.DictWriter(self._file, COLUMNS)
        self._tb: Any = None
        try:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(log_dir=str(folder / "tensorboard"))
        except ImportError:  # the optional extra is not installed: CSV only
            pass

    def row(self, **values: Any) -> None:
        self._writer.writerow({c: "" if values.get(c) is None else values[c] for c in COLUMNS})
        self._file.flush()
        if self._tb is not None:
            for key in ("loss", "lr", "images_per_s", "val_loss"):
                if values.get(key) is not None:
                    self._tb.add_scalar(f"train/{key}", values[key], values["step"])

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()
