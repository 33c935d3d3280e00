"""``bench finetune``: contrastive fine-tuning of an encoder, a checkpoint per epoch."""

from __future__ import annotations

import click


@click.command("finetune")
@click.argument("config")
@click.option("--nproc", type=click.IntRange(min=1), default=1, show_default=True,
              help="Data-parallel training processes on this host (gloo on CPU, nccl on "
                   "GPUs, one GPU each); each takes batch_size images per step.")
@click.option("--force", is_flag=True,
              help="Start over: delete the run's checkpoints instead of resuming.")
@click.option("--max-steps", type=click.IntRange(min=1), default=None,
              help="Stop after this many steps in all (a measurement; no half-epoch "
                   "checkpoint is written).")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def finetune(config: str, nproc: int, force: bool, max_steps: int | None,
             no_progress: bool) -> None:
    """Fine-tune CONFIG (a YAML file or a built-in, e.g. finetune-mini).

    \b
    Writes results/finetune/<name>/: epoch_<n>.pth ({'encoder', 'head', 'optimizer'};
    epoch_0 = before training), manifest.json, log.csv (+ TensorBoard events when
    tensorboard is installed). Run it again after an interruption to resume from the
    last checkpoint. Score every checkpoint with an experiment whose extractor has
    weights: {finetune: <name>, epochs: all}.
    """
    from bench.finetune.launch import finetune as run

    folder = run(config, nproc=nproc, force=force, progress=not no_progress,
                 max_steps=max_steps)
    click.echo(f"checkpoints and manifest in {folder}")
