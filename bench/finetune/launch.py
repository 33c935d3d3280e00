"""``bench finetune``: load and check the config, find the training images, decide between
a fresh start and a resume, then run 1 process here or N spawned ones (torchrun
semantics: ranks 0..N-1 on one host; under ``torchrun`` itself each process is a rank).

The datasets are loaded here, once, before any process starts: generating a built-in
dataset (copydetect-mini) is not something N processes should race on.
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path
from typing import Any

from rich.console import Console

from bench.config.checkpoints import MANIFEST, checkpoint_name, read_manifest, run_folder
from bench.core.errors import BenchError
from bench.core.fingerprint import fingerprint_obj
from bench.core.paths import cache_root
from bench.finetune.config import DataOptions, FinetuneConfig, load_config


def image_paths(data: DataOptions, config: FinetuneConfig, source: Path, where: str) -> list[str]:
    from bench.datasets import DatasetContext, ItemData
    from bench.datasets import registry as datasets

    dcls = datasets.get(data.dataset.name)
    root = os.environ.get("BENCH_DATA")
    context = DatasetContext(seed=config.seed, cache_dir=cache_root(), base_dir=source.parent,
                             data_root=Path(root) if root else None)
    loaded = dcls(dcls.Options.model_validate(data.dataset.options()), context).load()
    if not isinstance(loaded, ItemData) or loaded.modality != "image":
        raise BenchError(f"{source}: {where}.dataset: {data.dataset.name} does not yield images")
    items = {"database": loaded.database, "queries": loaded.queries,
             "all": loaded.database + loaded.queries}[data.part]
    paths = [str(it.path) for it in items if it.path is not None]
    return paths[: data.limit] if data.limit else paths


def config_fingerprint(config: FinetuneConfig) -> str:
    """What changes the training (not the description, threads or DataLoader workers)."""
    return fingerprint_obj(config.model_dump(mode="json",
                                             exclude={"description", "threads", "workers"}))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _device(config: FinetuneConfig) -> str:
    import torch

    if config.device == "cuda" and not torch.cuda.is_available():
        raise BenchError("device: cuda requested but this torch has no usable CUDA device")
    return "cuda" if config.device != "cpu" and torch.cuda.is_available() else "cpu"


def _manifest(folder: Path, config: FinetuneConfig, world: int, n_images: int,
              force: bool, source: Path) -> dict[str, Any]:
    """The manifest to continue: the existing one when it belongs to this config and
    process count (a resume), else a fresh header (the folder's old run is removed)."""
    fp = config_fingerprint(config)
    header = {"name": config.name, "encoder": config.encoder.name, "config_fingerprint": fp,
              "config": config.model_dump(mode="json"), "config_source": str(source),
              "world_size": world, "batch_size": config.batch_size,
              "global_batch": config.batch_size * world, "n_images": n_images, "epochs": []}
    if (folder / MANIFEST).is_file() and not force:
        old = read_manifest(folder, f"run {folder}")
        if old.get("config_fingerprint") != fp:
            raise BenchError(f"{folder} holds a run of another configuration; use --force to "
                             "start over (its checkpoints are deleted) or rename the config")
        if old.get("world_size") != world:
            raise BenchError(f"{folder} was trained with {old.get('world_size')} process(es); "
                             f"resume it with --nproc {old.get('world_size')} (or --force)")
        kept = [e for e in old["epochs"] if (folder / checkpoint_name(e["epoch"])).is_file()]
        return {**header, "epochs": sorted(kept, key=lambda e: e["epoch"])}
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return header


def finetune(spec: str | Path, *, nproc: int = 1, force: bool = False, progress: bool = True,
             max_steps: int | None = None, console: Console | None = None) -> Path:
    """Train (or resume) the run of a config; returns its folder."""
    from bench.finetune.train import Plan, steps_per_epoch, train_process

    console = console or Console(stderr=True)
    config, source = load_config(spec)
    if nproc < 1:
        raise BenchError("--nproc: expected at least 1 process")
    torchrun = "TORCHELASTIC_RUN_ID" in os.environ
    world = int(os.environ["WORLD_SIZE"]) if torchrun else nproc
    paths = image_paths(config.data, config, source, "data")
    val = image_paths(config.validation, config, source, "validation") if config.validation \
        else []
    if steps_per_epoch(len(paths), config.batch_size, world) == 0:
        raise BenchError(f"{source}: batch_size: {config.batch_size} x {world} process(es) "
                         f"needs at least {config.batch_size * world} training images, the "
                         f"data has {len(paths)}")
    folder = run_folder(config.name)
    device = _device(config)
    rank = int(os.environ.get("RANK", "0")) if torchrun else 0
    if rank == 0:
        manifest = _manifest(folder, config, world, len(paths), force, source)
    else:  # torchrun: rank 0 decides; train_process broadcasts its manifest to the others
        manifest = {"epochs": []}
    threads = config.threads or max(1, (os.cpu_count() or 1) // world)
    plan = Plan(config=config, source=source, folder=folder, paths=paths, val_paths=val,
                manifest=manifest, device=device, threads=threads, progress=progress,
                max_steps=max_steps)
    done = plan.resume_epoch
    if done >= config.epochs:
        console.print(f"[bold]finetune[/] {config.name}: all {config.epochs} epochs are done "
                      f"({folder})")
        return folder
    what = f"resuming after epoch {done}" if done >= 0 else "starting"
    console.print(f"[bold]finetune[/] {config.name}: {what}; {len(paths)} images, {world} "
                  f"process(es) x batch {config.batch_size} on {device}, {threads} thread(s) "
                  f"each -> {folder}")
    if torchrun:
        train_process(rank, world, plan)
    elif world == 1:
        train_process(0, 1, plan)
    else:
        import torch.multiprocessing as mp

        plan.port = _free_port()
        mp.start_processes(train_process, args=(world, plan), nprocs=world, join=True,
                           start_method="spawn")
    return folder
