"""The packaged config as the command composes it, for tests that build plans without Hydra."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

REPO_ROOT = Path(__file__).resolve().parents[1]


def load_config(**overrides) -> DictConfig:
    """Return conf/config.yaml without its hydra section, with dotted-key overrides applied."""
    config = OmegaConf.load(REPO_ROOT / "gptpipe" / "conf" / "config.yaml")
    config.pop("hydra")
    config.pop("defaults")
    for key, value in overrides.items():
        OmegaConf.update(config, key, value)
    OmegaConf.set_struct(config, True)
    return config
