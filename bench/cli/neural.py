"""``bench convert``: published TensorFlow SimCLR checkpoints -> local torch weights."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("convert")
@click.argument("kind", type=click.Choice(["simclr-v1", "simclr-v2"]))
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--ema/--no-ema", default=True, show_default=True,
              help="simclr-v2: the EMA weights (the published evaluation weights) or the raw ones.")
@click.option("--head", is_flag=True,
              help="simclr-v2: also keep the contrastive projection head (not used for features).")
def convert(kind: str, checkpoint: Path, out: Path, ema: bool, head: bool) -> None:
    """Convert a TensorFlow SimCLR CHECKPOINT (folder or model.ckpt-N prefix) to OUT.pt.

    The architecture is read from the checkpoint; the command prints the extractor name
    to use with the file. Needs tensorflow (pip install 'featbench[convert]').
    """
    from bench.extractors.neural.convert import convert_checkpoint

    name, n = convert_checkpoint(kind, checkpoint, out, ema=ema, head=head)
    click.echo(f"wrote {out} ({n} tensors) for extractor {name}; use it with\n"
               f"  extractor: {{name: {name}, weights: {out}}}")
