"""Optimisers and the learning-rate schedule of the SimCLR recipe.

LARS as in the SimCLR code (momentum 0.9, trust coefficient 0.001, weight decay 1e-6):
each parameter's step is scaled by ``trust * |w| / |g|``; biases and normalisation
parameters get neither weight decay nor that scaling. torch has no LARS, and the one
well-kept implementation (timm's) is not a dependency here, so it is written out (30
lines). The schedule is a pure function of the global step, so a resumed run needs no
scheduler state.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

from bench.finetune.config import OptimizerOptions, ScheduleOptions


def parameter_groups(modules: Iterable[nn.Module], weight_decay: float) -> list[dict]:
    """[decayed + LARS-scaled weights, excluded biases and norm parameters]."""
    decay: list[nn.Parameter] = []
    excluded: list[nn.Parameter] = []
    for module in modules:
        for sub in module.modules():
            norm = isinstance(sub, nn.modules.batchnorm._NormBase | nn.GroupNorm | nn.LayerNorm)
            for name, p in sub.named_parameters(recurse=False):
                if not p.requires_grad:
                    continue
                (excluded if norm or name == "bias" or p.ndim <= 1 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay, "lars": True},
            {"params": excluded, "weight_decay": 0.0, "lars": False}]


class LARS(torch.optim.Optimizer):
    def __init__(self, groups: list[dict], lr: float, momentum: float = 0.9,
                 trust: float = 0.001) -> None:
        super().__init__(groups, {"lr": lr, "momentum": momentum, "trust": trust,
                                  "weight_decay": 0.0, "lars": True})

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[no-untyped-def, override]
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                if group["weight_decay"]:
                    g = g.add(p, alpha=group["weight_decay"])
                lr = group["lr"]
                if group["lars"]:
                    w_norm, g_norm = torch.linalg.vector_norm(p), torch.linalg.vector_norm(g)
                    ratio = torch.where((w_norm > 0) & (g_norm > 0),
                                        group["trust"] * w_norm / g_norm, torch.ones_like(w_norm))
                    g = g * ratio
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p)
                v = state["momentum_buffer"]
                v.mul_(group["momentum"]).add_(g, alpha=lr)
                p.sub_(v)
        return None


def make_optimizer(modules: list[nn.Module], options: OptimizerOptions) -> torch.optim.Optimizer:
    groups = parameter_groups(modules, options.weight_decay)
    if options.name == "adam":
        for g in groups:
            g.pop("lars")
        return torch.optim.Adam(groups, lr=options.lr)
    return LARS(groups, lr=options.lr, momentum=options.momentum, trust=options.trust)


def learning_rate(step: int, total_steps: int, steps_per_epoch: int, base: float,
                  schedule: ScheduleOptions) -> float:
    """Linear warm-up over ``warmup_epochs``, then cosine decay to 0 at the last step
    (or constant without ``cosine``)."""
    warmup = int(round(schedule.warmup_epochs * steps_per_epoch))
    if step < warmup:
        return base * (step + 1) / warmup
    if not schedule.cosine:
        return base
    span = max(1, total_steps - warmup)
    return base * 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / span))
