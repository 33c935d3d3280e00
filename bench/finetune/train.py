"""One training process: data-parallel SimCLR fine-tuning, a checkpoint per epoch.

Rank r of N takes slice r of every global batch (``batch_size`` images each; the batch
order is a seeded permutation per epoch), embeds its images' two views in one forward
(BatchNorm statistics over both views, as in SimCLR; synchronised across processes), and
DistributedDataParallel averages the gradients. Rank 0 writes the log, the checkpoints
and the manifest. Everything random is seeded from (seed, epoch, ...), so a run resumed
from epoch e computes exactly what the uninterrupted run computes after epoch e.
"""

from __future__ import annotations

import ctypes
import io
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from bench.config.checkpoints import MANIFEST, checkpoint_name
from bench.core.files import atomic_write_bytes, atomic_write_json
from bench.extractors.neural.preprocess import PRESETS
from bench.finetune.augment import TwoViews
from bench.finetune.config import FinetuneConfig
from bench.finetune.log import RunLog
from bench.finetune.loss import nt_xent
from bench.finetune.model import ContrastiveModel, build_model, encoder_spec
from bench.finetune.optim import learning_rate, make_optimizer
from bench.finetune.syncbn import convert_sync_batchnorm


@dataclass
class Plan:
    """Everything a training process needs (pickled to spawned processes)."""

    config: FinetuneConfig
    source: Path
    folder: Path
    paths: list[str]
    val_paths: list[str]
    manifest: dict[str, Any]  # header + finished epochs so far (resume: the last one)
    device: str  # cpu | cuda
    threads: int
    progress: bool = True
    max_steps: int | None = None  # stop after this many steps in all (tests, measurements)
    port: int = 0

    @property
    def resume_epoch(self) -> int:
        return max((e["epoch"] for e in self.manifest["epochs"]), default=-1)


def _die_with_parent() -> None:
    """A spawned rank ends when the launcher is killed (SIGKILL leaves no chance to clean
    up), instead of training on as an orphan. Linux only; elsewhere a no-op."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass


def _save(path: Path, obj: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def _normalise(x: torch.Tensor, preset: str) -> torch.Tensor:
    p = PRESETS[preset]
    if p.mean is None or p.std is None:
        return x
    mean = torch.tensor(p.mean, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(p.std, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def steps_per_epoch(n_images: int, batch_size: int, world: int) -> int:
    return n_images // (batch_size * world)


def _batches(n: int, seed: int, epoch: int, batch: int, world: int, rank: int) -> list[int]:
    """This rank's image indices for one epoch, in step order (the incomplete global
    batch at the end is dropped: every process needs a full slice for the all-gather)."""
    steps = steps_per_epoch(n, batch, world)
    order = np.random.default_rng([seed, epoch]).permutation(n)[: steps * batch * world]
    return order.reshape(steps, world, batch)[:, rank].reshape(-1).tolist()


def _views(paths: list[str], config: FinetuneConfig) -> TwoViews:
    size = crop_size(config)
    return TwoViews(paths, size, config.augment.decode_side or 2 * size,
                    config.augment.strength, config.seed)


class EpochOrder:
    """The sampler: this rank's (epoch, image index) keys of the current epoch."""

    def __init__(self, n: int, config: FinetuneConfig, rank: int, world: int) -> None:
        self.n, self.config, self.rank, self.world, self.epoch = n, config, rank, world, 0

    def __iter__(self):  # type: ignore[no-untyped-def]
        c = self.config
        return iter([(self.epoch, i) for i in
                     _batches(self.n, c.seed, self.epoch, c.batch_size, self.world, self.rank)])

    def __len__(self) -> int:
        return steps_per_epoch(self.n, self.config.batch_size, self.world) * self.config.batch_size


def _loader(dataset: TwoViews, config: FinetuneConfig, rank: int,
            world: int) -> tuple[DataLoader, EpochOrder]:
    order = EpochOrder(len(dataset), config, rank, world)
    loader = DataLoader(dataset, batch_size=config.batch_size, sampler=order,  # type: ignore[arg-type]
                        num_workers=config.workers, persistent_workers=config.workers > 0,
                        drop_last=False)
    return loader, order


def _epoch(loader: tuple[DataLoader, EpochOrder], epoch: int) -> DataLoader:
    loader[1].epoch = epoch
    return loader[0]


def crop_size(config: FinetuneConfig) -> int:
    return config.augment.size or PRESETS[encoder_spec(config.encoder.name).preprocess].crop


def _mean_over_ranks(value: torch.Tensor, world: int) -> float:
    value = value.detach().clone()
    if world > 1:
        dist.all_reduce(value)
        value /= world
    return float(value)


def _validation_loss(model: Any, loader: tuple[DataLoader, EpochOrder] | None, plan: Plan,
                     epoch: int, world: int, device: torch.device, preset: str) -> float | None:
    if loader is None or len(loader[1]) == 0:
        return None
    model.eval()
    losses = []
    with torch.no_grad():
        for _, a, b in _epoch(loader, epoch):
            z = model(_normalise(torch.cat([a, b]).to(device), preset))
            za, zb = z.chunk(2)
            losses.append(_mean_over_ranks(nt_xent(za, zb, plan.config.temperature), world))
    model.train()
    return float(np.mean(losses))


def _checkpoint(model: ContrastiveModel, optimizer: Any, epoch: int, step: int) -> dict:
    return {"encoder": model.encoder.state_dict(), "head": model.head.state_dict(),
            "optimizer": optimizer.state_dict(), "epoch": epoch, "step": step}


def _record_epoch(plan: Plan, entry: dict[str, Any]) -> None:
    plan.manifest["epochs"] = [e for e in plan.manifest["epochs"]
                               if e["epoch"] != entry["epoch"]] + [entry]
    atomic_write_json(plan.folder / MANIFEST, plan.manifest)


def _progress(enabled: bool) -> Any:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("loss {task.fields[loss]:.4f}  lr {task.fields[lr]:.3g}  "
                               "{task.fields[ips]:.1f} images/s"),
                    console=Console(stderr=True), disable=not enabled)


def train_process(rank: int, world: int, plan: Plan) -> None:
    """Entry point of one rank (also called in-process for a single process)."""
    if world > 1:
        _die_with_parent()
    torch.set_num_threads(plan.threads)
    device = torch.device(f"cuda:{rank % max(1, torch.cuda.device_count())}"
                          if plan.device == "cuda" else "cpu")
    if world > 1:
        if device.type == "cuda":
            torch.cuda.set_device(device)
        init = "env://" if "TORCHELASTIC_RUN_ID" in os.environ else \
            f"tcp://127.0.0.1:{plan.port}"
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                                init_method=init, rank=rank, world_size=world)
    if world > 1:  # under torchrun each rank loaded its own plan: rank 0's decides resume
        shared = [plan.manifest]
        dist.broadcast_object_list(shared, src=0)
        plan.manifest = shared[0]
    try:
        _train(rank, world, plan, device)
    finally:
        if world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def _train(rank: int, world: int, plan: Plan, device: torch.device) -> None:
    config = plan.config
    torch.manual_seed(config.seed)
    model = build_model(config, plan.source)
    optimizer = make_optimizer([model.encoder, model.head], config.optimizer)
    start = plan.resume_epoch
    step = 0
    if start >= 0:
        ckpt = torch.load(plan.folder / checkpoint_name(start), map_location="cpu",
                          weights_only=True)
        model.encoder.load_state_dict(ckpt["encoder"])
        model.head.load_state_dict(ckpt["head"])
        if ckpt.get("optimizer"):
            optimizer.load_state_dict(ckpt["optimizer"])
        step = int(ckpt["step"])
    model.to(device)
    if start < 0:
        start = 0
        if rank == 0:  # epoch 0: the weights before fine-tuning, the sweep's baseline
            _save(plan.folder / checkpoint_name(0), _checkpoint(model, optimizer, 0, 0))
            _record_epoch(plan, {"epoch": 0, "file": checkpoint_name(0), "step": 0,
                                 "loss": None, "val_loss": None, "images_per_s": None})
    net: Any = model
    if world > 1:
        model = convert_sync_batchnorm(model, device.type)  # type: ignore[assignment]
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    model.train()
    preset = encoder_spec(config.encoder.name).preprocess
    per_epoch = steps_per_epoch(len(plan.paths), config.batch_size, world)
    total = per_epoch * config.epochs
    log = RunLog(plan.folder, start) if rank == 0 else None
    train = _loader(_views(plan.paths, config), config, rank, world)
    val = _loader(_views(plan.val_paths, config), config, rank, world) if plan.val_paths \
        else None
    with _progress(plan.progress and rank == 0) as bar:
        task = bar.add_task(config.name, total=total, completed=step, loss=float("nan"),
                            lr=0.0, ips=0.0)
        for epoch in range(start + 1, config.epochs + 1):
            losses, speeds = [], []
            bar.update(task, description=f"{config.name} epoch {epoch}/{config.epochs}")
            tick = time.perf_counter()
            for _, a, b in _epoch(train, epoch):
                lr = learning_rate(step, total, per_epoch, config.optimizer.lr, config.schedule)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                z = net(_normalise(torch.cat([a, b]).to(device, non_blocking=True), preset))
                za, zb = z.chunk(2)
                loss = nt_xent(za, zb, config.temperature)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                value = _mean_over_ranks(loss, world)
                now = time.perf_counter()
                ips = config.batch_size * world / (now - tick)
                tick = now
                losses.append(value)
                speeds.append(ips)
                step += 1
                if log is not None:
                    log.row(epoch=epoch, step=step, loss=f"{value:.6f}", lr=f"{lr:.6g}",
                            images_per_s=f"{ips:.2f}")
                bar.update(task, advance=1, loss=value, lr=lr, ips=ips)
                if plan.max_steps is not None and step >= plan.max_steps:
                    break
            if plan.max_steps is not None and step >= plan.max_steps and step % per_epoch:
                break  # stopped inside an epoch (a measurement): no checkpoint of half of it
            val_loss = _validation_loss(net, val, plan, epoch, world, device, preset)
            if rank == 0:
                _save(plan.folder / checkpoint_name(epoch),
                      _checkpoint(model, optimizer, epoch, step))
                _record_epoch(plan, {
                    "epoch": epoch, "file": checkpoint_name(epoch), "step": step,
                    "loss": float(np.mean(losses)) if losses else None, "val_loss": val_loss,
                    # the first step of an epoch pays for decoding: the median is the rate
                    "images_per_s": float(np.median(speeds)) if speeds else None})
                if val_loss is not None and log is not None:
                    log.row(epoch=epoch, step=step, val_loss=f"{val_loss:.6f}")
            if world > 1:
                dist.barrier()
            if plan.max_steps is not None and step >= plan.max_steps:
                break
    if log is not None:
        log.close()
