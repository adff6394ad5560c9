"""NormalizedMomentum: momentum SGD whose step is divided by the RMS gradient of the whole matrix (or of each row)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch.optim import Optimizer

from gptpipe.optim.closure import evaluate_closure


class NormalizedMomentum(Optimizer):
    """Momentum with one second-moment estimate per weight matrix, or per row where `row_wise` is set.

    For a parameter p with gradient g at its step t = 0, 1, ...:

        beta  = 1 - 0.5 / sqrt(1 + t)                       # momentum decay grows with t
        m     = beta * m + (1 - beta) * g
        v     = rho * v + (1 - rho) * mean(g**2)            # mean over the matrix, or over each row
        p     = p * (1 - lr * weight_decay) - lr * (raw_share * g + (1 - raw_share) * m) / (sqrt(v) + eps)

    with rho = 1 - max(1 / (1 + t), 1 / second_moment_horizon), which is the exact running mean of
    mean(g**2) over the first `second_moment_horizon` steps and then an exponential average over about
    that many steps. Because one scale is shared by a whole matrix, the step keeps the gradient's
    direction inside the matrix, and every matrix moves by about `lr` RMS per element.
    Embedding and output layers use `row_wise`, so a rarely seen token's row gets a full-size step.
    """

    def __init__(
        self,
        params,
        lr: float = 0.01,
        weight_decay: float = 0.0,
        raw_share: float = 0.2,
        second_moment_horizon: int = 100,
        eps: float = 1e-8,
        row_wise: bool = False,
    ):
        if lr < 0:
            raise ValueError(f"learning rate must be >= 0, got {lr}")
        if weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
        if not 0 <= raw_share <= 1:
            raise ValueError(f"raw_share must be in [0, 1], got {raw_share}")
        if second_moment_horizon < 1:
            raise ValueError(f"second_moment_horizon must be >= 1 step, got {second_moment_horizon}")
        defaults = {
            "lr": lr,
            "weight_decay": weight_decay,
            "raw_share": raw_share,
            "second_moment_horizon": second_moment_horizon,
            "eps": eps,
            "row_wise": row_wise,
        }
        super().__init__(params, defaults)

    def _init_state(self, p: torch.Tensor, row_wise: bool) -> dict:
        state = self.state[p]
        if not state:
            state["step"] = torch.tensor(0.0)
            state["momentum"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            moment_shape = (p.shape[0], 1) if row_wise and p.ndim == 2 else ()
            state["second_moment"] = torch.zeros(moment_shape, dtype=p.dtype, device=p.device)
        return state

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = evaluate_closure(closure)

        for group in self.param_groups:
            # Parameters skipped in some steps have fewer steps, so bucket by step count.
            buckets: dict[int, list[torch.Tensor]] = {}
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("NormalizedMomentum does not support sparse gradients")
                state = self._init_state(p, group["row_wise"])
                buckets.setdefault(int(state["step"].item()), []).append(p)
            for step, params in buckets.items():
                self._update(group, step, params)
        return loss

    def _update(self, group: dict, step: int, params: list[torch.Tensor]) -> None:
        lr, raw_share, eps = group["lr"], group["raw_share"], group["eps"]
        grads = [p.grad for p in params]
        states = [self.state[p] for p in params]
        momenta = [s["momentum"] for s in states]
        second_moments = [s["second_moment"] for s in states]

        beta = 1 - 0.5 / math.sqrt(1 + step)
        rho = 1 - max(1 / (1 + step), 1 / group["second_moment_horizon"])
        torch._foreach_lerp_(momenta, grads, 1 - beta)

        if group["row_wise"]:
            mean_squares = [g.square().mean(dim=-1, keepdim=True) if g.ndim == 2 else g.square().mean() for g in grads]
        else:
            norms = torch._foreach_norm(grads)
            mean_squares = [(n.square() / g.numel()).to(g.dtype) for n, g in zip(norms, grads)]
        torch._foreach_lerp_(second_moments, mean_squares, 1 - rho)

        # step_scales: lr / (sqrt(v) + eps), one per matrix or row
        step_scales = torch._foreach_sqrt(second_moments)
        torch._foreach_add_(step_scales, eps)
        torch._foreach_reciprocal_(step_scales)
        torch._foreach_mul_(step_scales, -lr)

        updates = torch._foreach_mul(grads, raw_share)
        torch._foreach_add_(updates, momenta, alpha=1 - raw_share)
        for update, scale in zip(updates, step_scales):
            update.mul_(scale)

        if group["weight_decay"] > 0:
            torch._foreach_mul_(params, 1 - lr * group["weight_decay"])
        torch._foreach_add_(params, updates)
        for state in states:
            state["step"] += 1
