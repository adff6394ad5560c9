"""Fixtures for tests that plan and run small scripts in-process."""

from __future__ import annotations

from pathlib import Path

import pytest
from config_loading import load_config

from gptpipe.config.plan import build_plan
from gptpipe.dsl import parse_text
from gptpipe.runtime.runner import execute_plan
from gptpipe.runtime.state import RunState
from script_runs import TINY_SETTINGS

@pytest.fixture
def text_file(tmp_path: Path) -> Path:
    path = tmp_path / "text.txt"
    path.write_text("".join(f"row {i % 7}: the cat sat on the mat.\n" for i in range(300)))
    return path


@pytest.fixture
def run(tmp_path: Path):
    """Return a function that plans and runs a script in-process, in a fresh run folder each call."""
    count = 0

    def run_script(body: str, **settings) -> RunState:
        nonlocal count
        count += 1
        run_dir = tmp_path / f"run{count}"
        run_dir.mkdir()
        config = load_config(precision="32-true", accelerator="cpu", **settings)
        plan = build_plan([parse_text(TINY_SETTINGS + body, "s.txt")], config)
        return execute_plan(plan, config, run_dir)

    return run_script
