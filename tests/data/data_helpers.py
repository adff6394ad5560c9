"""Helpers for the data pipeline tests: running operations and writing data files."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
from omegaconf import OmegaConf

import gptpipe.data.ops  # noqa: F401  (registers the data operations)
from gptpipe.errors import Location
from gptpipe.runtime.registry import OPERATIONS
from gptpipe.runtime.state import PlanContext, RunState

SHAKESPEARE = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "tinyshakespeare.txt"


def make_state(tmp_path: Path, **values: Any) -> RunState:
    """Return a fresh RunState with TEST_FRACTION 0.05 unless `values` sets it."""
    return RunState(config=OmegaConf.create({}), run_dir=tmp_path, values={"TEST_FRACTION": 0.05, **values})


def run_op(state: RunState, name: str, *args: Any) -> None:
    """Run the script operation `name` as the step runner would."""
    OPERATIONS[name].func(state, *args)


def check_op(name: str, *args: Any, before: tuple[str, ...] = ()) -> None:
    """Run the plan-time check of operation `name`."""
    context = PlanContext(values={"TEST_FRACTION": 0.05}, config=OmegaConf.create({}),
                          location=Location("test.txt", 1, 1), model_exists=False, data_ops_before=before)
    check: Callable[..., None] | None = OPERATIONS[name].check
    assert check is not None
    check(context, *args)


def write_llmc(path: Path, tokens: np.ndarray, count: int | None = None) -> Path:
    """Write an llm.c token file: 256 int32 header (magic, version, count), then uint16 tokens."""
    header = np.zeros(256, dtype="<i4")
    header[0] = 20240520
    header[1] = 1
    header[2] = len(tokens) if count is None else count
    path.write_bytes(header.tobytes() + np.asarray(tokens, dtype="<u2").tobytes())
    return path


def train_bpe(path: Path, texts: list[str], vocab_size: int = 300) -> Path:
    """Train a small byte-level BPE tokenizer with Hugging Face tokenizers and save it to `path`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tokenizer.train_from_iterator(texts, trainer=trainer)
    tokenizer.save(str(path))
    return path


SAMPLE_TEXT = (
    "The quick brown fox jumps over the lazy dog. " * 20
    + "Pack my box with five dozen liquor jugs. " * 20
)
