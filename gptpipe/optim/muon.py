"""Muon for the 2-D block matrices combined with AdamW for everything else, as one torch.optim.Optimizer."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.optim import Optimizer


class MuonWithAdamW(Optimizer):
    """torch.optim.Muon on `muon_groups` and torch.optim.AdamW on `adamw_groups`, stepped together.

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
            torch.optim.Muon(muon_groups, lr=lr, weight_decay=0.0, momentum=momentum, adjust_lr_fn="match_rms_adamw")
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
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        if self._muon is not None:
            self._muon.step()
        if self._adamw is not None:
            self._adamw.step()
        return loss
