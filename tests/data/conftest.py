"""Fixtures for the data pipeline tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from data_helpers import SHAKESPEARE, make_state

from gptpipe.runtime.state import RunState


@pytest.fixture
def state(tmp_path: Path) -> RunState:
    return make_state(tmp_path)


@pytest.fixture
def shakespeare() -> Path:
    if not SHAKESPEARE.is_file():
        pytest.skip(f"tinyshakespeare.txt not found at {SHAKESPEARE.resolve()}")
    return SHAKESPEARE
