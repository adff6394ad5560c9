"""Muon for the 2-D block matrices combined with AdamW for everything else, as one torch.optim.Optimizer."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch.optim import Optimizer

from gptpipe.hardware import fast_bf16_matmul
from gptpipe.optim.closure import evaluate_closure


class BatchedMuon(torch.optim.Muon):
    """torch.optim.Muon whose step orthogonalises all matrices of the same shape at once.

    torch.optim.Muon runs the Newton-Schulz iteration one matrix at a time, about 20 small kernels
    per matrix. Here matrices that share a shape (after turning tall ones on their side, as Muon
    does) are stacked and iterated together with batched products, and the momentum and weight
    updates use foreach kernels. The update rule, the state (one "momentum_buffer" per matrix)
    and the options are those of torch.optim.Muon.

    torch.optim.Muon always iterates in bf16. Here `ns_dtype` chooses: None (the default) takes
    bf16 on devices with fast bf16 products (GPUs, CPUs with AVX512-BF16 or AMX) and float32 on
    other CPUs, where bf16 products run on a slow path. In bf16, results match torch.optim.Muon
    up to the rounding of batched against single products.
    """

    def __init__(self, params, *args, ns_dtype: torch.dtype | None = None, **kwargs):
        super().__init__(params, *args, **kwargs)
        self.ns_dtype = ns_dtype

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = evaluate_closure(closure)
        for group in self.param_groups:
            params, grads, buffers = [], [], []
            self._init_group(group, params, grads, buffers)
            if params:
                self._step_group(group, params, grads, buffers)
        return loss

    def _newton_schulz_dtype(self, device: torch.device) -> torch.dtype:
        if self.ns_dtype is not None:
            return self.ns_dtype
        return torch.bfloat16 if fast_bf16_matmul(device) else torch.float32

    def _step_group(self, group: dict, params: list, grads: list, buffers: list) -> None:
        lr = float(group["lr"])
        momentum = group["momentum"]
        torch._foreach_lerp_(buffers, grads, 1 - momentum)
        updates = torch._foreach_lerp(grads, buffers, momentum) if group["nesterov"] else buffers
        if group["weight_decay"]:
            torch._foreach_mul_(params, 1 - lr * group["weight_decay"])

        by_shape: dict[tuple[int, int], list[int]] = {}
        for index, param in enumerate(params):
            rows, columns = param.shape
            by_shape.setdefault((min(rows, columns), max(rows, columns)), []).append(index)
        for (short, long), indexes in by_shape.items():
            # Wide orientation (short x long), as torch.optim.Muon transposes tall matrices.
            stacked = torch.stack([updates[i] if params[i].shape[0] == short else updates[i].mT for i in indexes])
            orthogonal = _newton_schulz(stacked, group["ns_coefficients"], group["ns_steps"], group["eps"],
                                        self._newton_schulz_dtype(stacked.device))
            for position, i in enumerate(indexes):
                update = orthogonal[position] if params[i].shape[0] == short else orthogonal[position].mT
                params[i].add_(update, alpha=-_adjusted_lr(lr, group["adjust_lr_fn"], *params[i].shape))


def _newton_schulz(stacked: torch.Tensor, coefficients: tuple[float, float, float], steps: int,
                   eps: float, dtype: torch.dtype) -> torch.Tensor:
    """Return the approximate orthogonalisation of each (short x long) matrix of `stacked`, in `dtype`.

    The same quintic iteration as torch.optim.Muon: each matrix is scaled to Frobenius norm at
    most 1, then X <- a X + (b A + c A A) X with A = X X^T, `steps` times.
    """
    a, b, c = coefficients
    x = stacked.to(dtype)
    x = x / x.norm(dim=(1, 2), keepdim=True).clamp(min=eps)
    for _ in range(steps):
        gram = torch.bmm(x, x.mT)
        polynomial = torch.baddbmm(gram, gram, gram, beta=b, alpha=c)
        x = torch.baddbmm(x, polynomial, x, beta=a)
    return x


def _adjusted_lr(lr: float, rule: str | None, rows: int, columns: int) -> float:
    """torch.optim.Muon's learning rate for a (rows x columns) matrix under adjustment `rule`."""
    if rule is None or rule == "original":
        return lr * math.sqrt(max(1.0, rows / columns))
    if rule == "match_rms_adamw":
        return lr * 0.2 * math.sqrt(max(rows, columns))
    return lr


class MuonWithAdamW(Optimizer):
    """Muon (`BatchedMuon`) on `muon_groups` and torch.optim.AdamW on `adamw_groups`, stepped together.

    The two inner optimizers share this optimizer's `param_groups` (Muon's groups first) and
    `state`, so `state_dict()` and `load_state_dict()` have the standard torch layout and the
    train loop sets learning rates through `param_groups` as for any optimizer. Muon's step is
    scaled with torch's "match_rms_adamw" rule (0.2 * sqrt(max(rows, columns))), so the same
    `lr` gives both halves updates of similar RMS.
    """

    def __init__(
        self,
        muon_groups: list[dict],
        adamw_groups: list[dict],
        lr: float = 0.01,
        momentum: float = 0.95,
        betas: tuple[float, float] = (0.9, 0.95),
    ):
        all_params = [p for group in muon_groups + adamw_groups for p in group["params"]]
        super().__init__(all_params, {"lr": lr})
        self._muon = (
            BatchedMuon(muon_groups, lr=lr, weight_decay=0.0, momentum=momentum, adjust_lr_fn="match_rms_adamw")
            if muon_groups
            else None
        )
        self._adamw = (
            torch.optim.AdamW(adamw_groups, lr=lr, betas=betas, weight_decay=0.0, fused=True)
            if adamw_groups
            else None
        )
        self._link_inner_optimizers()

    def _link_inner_optimizers(self) -> None:
        if not hasattr(self, "_muon_group_count"):
            self._muon_group_count = len(self._muon.param_groups) if self._muon is not None else 0
            self.param_groups = (self._muon.param_groups if self._muon is not None else []) + (
                self._adamw.param_groups if self._adamw is not None else []
            )
        if self._muon is not None:
            self._muon.param_groups = self.param_groups[: self._muon_group_count]
            self._muon.state = self.state
        if self._adamw is not None:
            self._adamw.param_groups = self.param_groups[self._muon_group_count :]
            self._adamw.state = self.state

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
        self._link_inner_optimizers()

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = evaluate_closure(closure)
        if self._muon is not None:
            self._muon.step()
        if self._adamw is not None:
            self._adamw.step()
        return loss
