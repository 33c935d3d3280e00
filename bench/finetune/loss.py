"""NT-Xent (the SimCLR loss) over the global batch of every process.

Each process embeds its own images twice (views ``a`` and ``b``); the projections of all
processes are gathered so that every anchor sees the whole global batch as negatives. As
in the original, the gather routes the gradient back to the local slice only (the other
processes' slices are constants here; their own processes differentiate them), and the
loss is the mean over the local anchors, both directions (a->b and b->a).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F

#: a finite "minus infinity": -inf in a masked logit row gives nan gradients under autocast
_MASK = -1e9


def gather_keep_local(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """(concatenation over processes in rank order, this process's offset in it); only the
    local slice carries gradients."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x, 0
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.detach().contiguous())
    rank = dist.get_rank()
    parts[rank] = x
    return torch.cat(parts), rank * x.shape[0]


def nt_xent(z_a: torch.Tensor, z_b: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """Mean NT-Xent of the local anchors. ``z_a[i]`` and ``z_b[i]`` are the projections of
    two views of local image i (any scale: they are L2-normalised here)."""
    z_a = F.normalize(z_a, dim=1)
    z_b = F.normalize(z_b, dim=1)
    all_a, offset = gather_keep_local(z_a)
    all_b, _ = gather_keep_local(z_b)
    n_local, n_global = z_a.shape[0], all_a.shape[0]
    keys = torch.cat([all_a, all_b])  # (2N, d): every view of every image
    anchors = torch.cat([z_a, z_b])  # (2n, d)
    logits = anchors @ keys.T / temperature
    local = torch.arange(n_local, device=z_a.device) + offset
    own = torch.cat([local, local + n_global])  # each anchor's own column: masked out
    positive = torch.cat([local + n_global, local])  # the other view of the same image
    rows = torch.arange(2 * n_local, device=z_a.device)
    mask = torch.zeros_like(logits, dtype=torch.bool)
    mask[rows, own] = True
    logits = logits.masked_fill(mask, _MASK)
    return F.cross_entropy(logits, positive)
