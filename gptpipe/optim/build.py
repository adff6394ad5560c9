"""build_optimizer: parameter groups by role and the optimizers a run can choose."""

from __future__ import annotations

import torch
from torch import nn

from gptpipe.errors import ConfigError
from gptpipe.optim.muon import MuonWithAdamW
from gptpipe.optim.normalized import NormalizedMomentum

OPTIMIZERS: dict[str, str] = {
    "normalized": "momentum SGD with the step divided by the RMS gradient of each matrix (each row for "
    "embeddings and output layer)",
    "adamw": "torch.optim.AdamW, betas (0.9, 0.95)",
    "muon": "torch.optim.Muon (orthogonalised momentum) for block matrices, AdamW for embeddings, output layer "
    "and norms",
}
"""Optimizer name -> one-line description."""

DEFAULT_OPTIMIZER = "muon"
"""Optimizer that `python -m gptpipe.bench.optimizers` measured as best at lr 0.01 (see docs/benchmarks.md).

It reached the lowest loss in every cell from e128 to e1024 and d4 to d48, and it was the only one
that did not diverge at e1024 d16.
"""
# NOTE: at e1024 d48 all three optimizers diverged within that benchmark's 4-iteration warm-up.
# Stability there with a long warm-up (DROP_CONFIG slow1000) has not been measured.

ADAMW_BETAS = (0.9, 0.95)

# Parameter roles. Weight decay applies to MATRIX and OUTPUT only.
MATRIX = "matrix"
EMBEDDING = "embedding"
OUTPUT = "output"
VECTOR = "vector"


def parameter_roles(model: nn.Module) -> dict[str, list[nn.Parameter]]:
    """Split the trainable parameters into roles.

    - embedding: nn.Embedding tables.
    - output: the weight of the module named `output`, which is the GPT's output layer.
    - matrix: every other 2-D weight.
    - vector: the rest, such as norm gains and biases.
    """
    roles: dict[str, list[nn.Parameter]] = {MATRIX: [], EMBEDDING: [], OUTPUT: [], VECTOR: []}
    seen: set[int] = set()
    for module_name, module in model.named_modules():
        for param in module.parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            if isinstance(module, nn.Embedding):
                roles[EMBEDDING].append(param)
            elif module_name == "output" and param.ndim == 2:
                roles[OUTPUT].append(param)
            elif param.ndim == 2:
                roles[MATRIX].append(param)
            else:
                roles[VECTOR].append(param)
    return roles


def _group(params: list[nn.Parameter], role: str, weight_decay: float, **options) -> dict:
    return {"params": params, "role": role, "weight_decay": weight_decay, "lr_scale": 1.0, **options}


def build_optimizer(model: nn.Module, name: str, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """Return optimizer `name` (a key of OPTIMIZERS) over `model`'s parameters.

    Decoupled weight decay (p *= 1 - lr * weight_decay each step) applies to the block matrices and
    the output layer, never to embeddings, norm gains or biases. Every parameter group has a
    "role" and an "lr_scale"; set learning rates with `set_learning_rate`.
    """
    if name not in OPTIMIZERS:
        raise ConfigError(f"unknown optimizer '{name}'; known optimizers are {', '.join(OPTIMIZERS)}")
    if lr <= 0:
        raise ConfigError(f"learning rate must be > 0, got {lr}; set lr in DROP_CONFIG, e.g. lr0.01")
    if weight_decay < 0:
        raise ConfigError(f"weight decay must be >= 0, got {weight_decay}; set reg in DROP_CONFIG, e.g. reg0")
    roles = parameter_roles(model)

    if name == "normalized":
        groups = [
            _group(roles[MATRIX], MATRIX, weight_decay, row_wise=False),
            _group(roles[OUTPUT], OUTPUT, weight_decay, row_wise=True),
            _group(roles[EMBEDDING], EMBEDDING, 0.0, row_wise=True),
            _group(roles[VECTOR], VECTOR, 0.0, row_wise=False),
        ]
        return NormalizedMomentum([g for g in groups if g["params"]], lr=lr)

    if name == "adamw":
        groups = [
            _group(roles[MATRIX], MATRIX, weight_decay),
            _group(roles[OUTPUT], OUTPUT, weight_decay),
            _group(roles[EMBEDDING], EMBEDDING, 0.0),
            _group(roles[VECTOR], VECTOR, 0.0),
        ]
        return torch.optim.AdamW([g for g in groups if g["params"]], lr=lr, betas=ADAMW_BETAS, fused=True)

    muon_groups = [_group(roles[MATRIX], MATRIX, weight_decay)] if roles[MATRIX] else []
    adamw_groups = [
        _group(roles[OUTPUT], OUTPUT, weight_decay),
        _group(roles[EMBEDDING], EMBEDDING, 0.0),
        _group(roles[VECTOR], VECTOR, 0.0),
    ]
    return MuonWithAdamW(muon_groups, [g for g in adamw_groups if g["params"]], lr=lr, betas=ADAMW_BETAS)
