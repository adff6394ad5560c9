"""Shared fixtures: the packaged config without Hydra, paths to the repository and shared data."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import DictConfig

from config_loading import load_config

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
SHAKESPEARE = SHARED_DATA / "tinyshakespeare.txt"


@pytest.fixture
def config() -> DictConfig:
    return load_config()


@pytest.fixture
def shakespeare() -> Path:
    if not SHAKESPEARE.exists():
        pytest.skip(f"shared data file not found at {SHAKESPEARE}; it lives beside the repository in shared/data")
    return SHAKESPEARE
