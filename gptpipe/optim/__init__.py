"""Optimizers and the learning-rate schedule."""

from gptpipe.optim.build import DEFAULT_OPTIMIZER, OPTIMIZERS, build_optimizer, parameter_roles
from gptpipe.optim.muon import MuonWithAdamW
from gptpipe.optim.normalized import NormalizedMomentum
from gptpipe.optim.schedule import learning_rate, set_learning_rate

__all__ = [
    "DEFAULT_OPTIMIZER",
    "OPTIMIZERS",
    "MuonWithAdamW",
    "NormalizedMomentum",
    "build_optimizer",
    "learning_rate",
    "parameter_roles",
    "set_learning_rate",
]
