"""RunState: everything the operations of one run share, and PlanContext for plan-time checks."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from gptpipe.config.dims import DropConfig, ModelDims, TrainConfig
from gptpipe.errors import Location

log = logging.getLogger("gptpipe")


@dataclass
class PlanContext:
    """Input of an operation's plan-time `check`: the values assigned before the step."""

    values: dict[str, Any]
    """Script variables as the step will see them (defaults, assignments, overrides)."""
    config: DictConfig
    location: Location
    model_exists: bool
    data_ops_before: tuple[str, ...]
    """Names of the data operations that run before this step."""
    explicit: frozenset[str] = frozenset()
    """Variables the script or the command line set before this step (the rest are defaults)."""

    def model_dims(self) -> ModelDims:
        from gptpipe.config.plan import decode_dims

        return decode_dims("MODEL_DIMS", self.values, self.config)  # type: ignore[return-value]

    def train_config(self) -> TrainConfig:
        from gptpipe.config.plan import decode_dims

        return decode_dims("TRAIN_CONFIG", self.values, self.config)  # type: ignore[return-value]


@dataclass
class RunState:
    """The run's mutable state, passed to every operation as its first argument."""

    config: DictConfig
    """The whole composed config (script variables, settings, `model`/`train`/`drop` sub-trees)."""
    run_dir: Path
    """Output directory of this run (Hydra's run directory)."""
    values: dict[str, Any] = field(default_factory=dict)
    """Script variables as seen by the current step."""
    location: Location | None = None
    """The script position of the current step."""
    explicit: frozenset[str] = frozenset()
    """Variables the script or the command line set before the current step (the rest are defaults)."""
    data: Any = None
    """The data pipeline (gptpipe.data), created by the first data operation or by train()."""
    model: Any = None
    """The GPT (gptpipe.model), once created or loaded."""
    model_flags: tuple[str, ...] = ()
    """The MPF_* flags the model was created with."""
    optimizer: Any = None
    optimizer_name: str | None = None
    """The optimizer's name (optimizer= setting or the one a checkpoint was saved with)."""
    iteration: int = 0
    """Iterations trained so far; load_checkpoint() restores it."""
    model_origin: str | None = None
    """File that load_model() read the current model's weights from, or None for a created or resumed model."""
    train_seconds: float = 0.0
    """Wall-clock seconds spent in train() so far, counted against MAX_SECONDS; load_checkpoint() restores it."""
    resume: dict[str, Any] | None = None
    """Optimizer, schedule and random states restored by load_checkpoint(), consumed by train()."""
    fabric: Any = None
    """The Lightning Fabric instance, created on first use."""
    precision: str = ""
    """The Fabric precision in use, with precision=auto resolved (e.g. bf16-mixed)."""
    rank: int = 0
    world_size: int = 1

    @property
    def is_rank_zero(self) -> bool:
        return self.rank == 0

    def model_dims(self) -> ModelDims:
        from gptpipe.config.plan import decode_dims

        return decode_dims("MODEL_DIMS", self.values, self.config)  # type: ignore[return-value]

    def train_config(self) -> TrainConfig:
        from gptpipe.config.plan import decode_dims

        return decode_dims("TRAIN_CONFIG", self.values, self.config)  # type: ignore[return-value]

    def drop_config(self) -> DropConfig:
        from gptpipe.config.plan import decode_dims

        return decode_dims("DROP_CONFIG", self.values, self.config)  # type: ignore[return-value]

    @property
    def checkpoint_dir(self) -> Path:
        configured = self.values.get("CHECKPOINT_DIR") or ""
        return Path(configured) if configured else self.run_dir / "checkpoints"
