"""Script text shared by the runtime tests."""

from __future__ import annotations

from pathlib import Path

TINY_SETTINGS = """\
MODEL_DIMS = 'e128h1d2w32'
TRAIN_CONFIG = 'b4f16'
DROP_CONFIG = 'slow2'
EVAL_ITERS = 1
EXACT_TEST_BATCHES = 5
"""
"""Assignments put before every script that `run` executes: a tiny model and short evaluations."""


def train_script(text_file: Path, iterations: int, interval: int, extra: str = "") -> str:
    """Return a script that trains the tiny model on `text_file`, saving every `interval` iterations."""
    return (f"MAX_ITERS = {iterations}\nEVAL_INTERVAL = {interval}\n{extra}"
            f"make_char_dataset('{text_file}')\ncreate_model()\ntrain()\n")
