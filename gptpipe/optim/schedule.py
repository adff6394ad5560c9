"""Learning-rate schedule: linear warm-up, constant, optional linear decay to 0 over the last 1 / tail of the run."""

from __future__ import annotations

import torch

from gptpipe.config.dims import DropConfig


def learning_rate(iteration: int, drop: DropConfig, max_iters: int, progress: float | None = None) -> float:
    """Return the learning rate for `iteration` (0-based) of a run of `max_iters` iterations.

    The warm-up factor grows linearly from 1/warmup at iteration 0 to 1 at iteration warmup - 1.
    With tail > 0 the rate is further multiplied by a factor that falls linearly from 1 when the
    run is 1 - 1/tail done to 0 at its end. How much of the run is done is iteration / max_iters,
    or `progress` (0 to 1) when given: train() passes the larger of that and the spent share of
    MAX_SECONDS. When warm-up is over before the decay starts, tail1 is a linear decay from lr to 0.
    """
    warmup_factor = min(1.0, (iteration + 1) / drop.warmup) if drop.warmup > 0 else 1.0
    decay_factor = 1.0
    if drop.tail > 0:
        if progress is None:
            progress = iteration / max_iters if max_iters > 0 else 1.0
        decay_factor = min(1.0, max(0.0, (1.0 - progress) * drop.tail))
    return drop.lr * warmup_factor * decay_factor


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every parameter group's learning rate to `lr` times the group's "lr_scale" (1 when absent)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
