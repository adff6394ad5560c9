"""The optional closure of torch.optim.Optimizer.step, shared by gptpipe's optimizers."""

from __future__ import annotations

from collections.abc import Callable

import torch


def evaluate_closure(closure: Callable[[], float] | None) -> float | None:
    """Return the loss from `closure` computed with gradients enabled, or None without a closure."""
    if closure is None:
        return None
    with torch.enable_grad():
        return closure()
