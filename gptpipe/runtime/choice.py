"""Multiple-choice evaluation (HellaSwag style): read a token file, score endings by log-likelihood.

The file is a stream of little-endian uint16 values. Each example is: the context length,
the context tokens, the number of endings, then for each ending its length and its tokens,
and last the index of the correct ending.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from gptpipe.errors import DataError

log = logging.getLogger("gptpipe.eval")

_VALUE_BYTES = 2  # every value in the file is a uint16


@dataclass(frozen=True)
class ChoiceExample:
    """One multiple-choice question: a context and candidate endings, as token ids."""

    context: np.ndarray
    """Context tokens, int64, at least one."""
    endings: tuple[np.ndarray, ...]
    """Candidate endings, int64, each at least one token."""
    label: int
    """Index of the correct ending."""
    offset: int
    """Byte offset of the example in its file, for error messages."""


@dataclass(frozen=True)
class ChoiceScore:
    """Accuracy of a model on a list of multiple-choice examples."""

    examples: int
    acc: float
    """Fraction of examples whose correct ending has the highest total log-likelihood."""
    acc_norm: float
    """Fraction of examples whose correct ending has the highest mean log-likelihood per token."""


class _Reader:
    """Walks the values of a choice file, raising DataError with the example number and byte offset."""

    def __init__(self, path: Path, values: np.ndarray, vocab_size: int):
        self.path = path
        self.values = values
        self.vocab_size = vocab_size
        self.position = 0
        self.example = 0

    def error(self, problem: str, position: int) -> DataError:
        return DataError(
            f"{self.path}: example {self.example} (counting from 0), byte offset "
            f"{position * _VALUE_BYTES}: {problem}"
        )

    def take(self, count: int, part: str) -> np.ndarray:
        end = self.position + count
        if end > len(self.values):
            raise self.error(
                f"the file ends in the middle of the example while reading {part} "
                f"({count} values needed, {len(self.values) - self.position} left); the file is "
                "truncated, so write it again",
                self.position,
            )
        chunk = self.values[self.position : end]
        self.position = end
        return chunk

    def take_count(self, part: str) -> int:
        return int(self.take(1, part)[0])

    def take_tokens(self, count: int, part: str) -> np.ndarray:
        start = self.position
        tokens = self.take(count, part)
        too_large = np.flatnonzero(tokens >= self.vocab_size)
        if too_large.size:
            index = int(too_large[0])
            raise self.error(
                f"token id {int(tokens[index])} in {part} is not below the model's vocabulary size "
                f"{self.vocab_size}; the file was tokenized with another tokenizer",
                start + index,
            )
        return tokens.astype(np.int64)


def read_choice_file(path: str | os.PathLike, vocab_size: int) -> list[ChoiceExample]:
    """Read a multiple-choice token file and check every token id against `vocab_size`.

    Raises DataError for a missing or empty file, a file that ends inside an example, an
    example without context or endings, an empty ending, a token id at or above
    `vocab_size` and a correct-ending index out of range.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"multiple-choice file {path} not found; check the path")
    size = path.stat().st_size
    if size == 0:
        raise DataError(f"multiple-choice file {path} is empty")

    values = np.fromfile(path, dtype="<u2")
    reader = _Reader(path, values, vocab_size)
    examples = []
    while reader.position < len(values):
        start = reader.position
        context_length = reader.take_count("the context length")
        if context_length == 0:
            raise reader.error("the context is empty; every example needs at least one context token", start)
        context = reader.take_tokens(context_length, "the context")

        count_position = reader.position
        ending_count = reader.take_count("the number of endings")
        if ending_count == 0:
            raise reader.error("the example has no endings", count_position)
        endings = []
        for ending_index in range(ending_count):
            length_position = reader.position
            length = reader.take_count(f"the length of ending {ending_index}")
            if length == 0:
                raise reader.error(f"ending {ending_index} is empty", length_position)
            endings.append(reader.take_tokens(length, f"ending {ending_index}"))

        label_position = reader.position
        label = reader.take_count("the index of the correct ending")
        if label >= ending_count:
            raise reader.error(
                f"the correct-ending index {label} is out of range for {ending_count} endings", label_position
            )
        examples.append(ChoiceExample(context, tuple(endings), label, start * _VALUE_BYTES))
        reader.example += 1

    if size % _VALUE_BYTES:
        reader.position = len(values)
        raise reader.error("the file ends in the middle of a uint16 value; the file is truncated", len(values))
    return examples


def _build_rows(example: ChoiceExample, max_len: int) -> list[tuple[np.ndarray, int]]:
    """Return each ending's input row and the number of its tokens to score.

    A row is context + ending, cut from the left to `max_len` tokens.
    """
    rows = []
    for ending in example.endings:
        row = np.concatenate([example.context, ending])[-max_len:]
        # The first token of a row has no prediction, so an ending cut to the whole row loses one.
        rows.append((row, min(len(ending), len(row) - 1)))
    return rows


def score_choices(
    model_fn: Callable[[torch.Tensor], torch.Tensor],
    examples: Sequence[ChoiceExample],
    *,
    max_len: int,
    batch_tokens: int = 8192,
    device: str | torch.device = "cpu",
) -> ChoiceScore:
    """Score each example's endings by the model's log-likelihood of their tokens after the context.

    `model_fn` maps token ids (B, T) int64 to logits (B, T, V) and must be causal, because rows
    are padded on the right. Contexts are cut from the left so that context + ending fits in
    `max_len` tokens. Several examples share one forward pass while the padded batch stays
    within `batch_tokens` tokens, and an example's endings are never split across passes.
    An example whose rows alone exceed `batch_tokens` runs by itself. Peak memory is about
    two float32 logits tensors of batch_tokens x vocabulary size.
    """
    if max_len < 2:
        raise ValueError(f"max_len must be at least 2 to score a token after the context, got {max_len}")
    if not examples:
        raise DataError("there are no multiple-choice examples to score")

    correct = 0
    correct_norm = 0
    batch: list[tuple[ChoiceExample, list[tuple[np.ndarray, int]]]] = []
    batch_rows = 0
    batch_width = 0

    def flush() -> None:
        nonlocal correct, correct_norm
        totals, counts = _score_rows(model_fn, [row for _, rows in batch for row in rows], device)
        first = 0
        for example, rows in batch:
            total = totals[first : first + len(rows)]
            mean = total / counts[first : first + len(rows)]
            first += len(rows)
            correct += int(torch.argmax(total).item() == example.label)
            correct_norm += int(torch.argmax(mean).item() == example.label)

    for example in examples:
        rows = _build_rows(example, max_len)
        width = max(len(row) for row, _ in rows)
        grown_width = max(batch_width, width)
        if batch and (batch_rows + len(rows)) * grown_width > batch_tokens:
            flush()
            batch, batch_rows, batch_width = [], 0, 0
            grown_width = width
        batch.append((example, rows))
        batch_rows += len(rows)
        batch_width = grown_width
    if batch:
        flush()

    score = ChoiceScore(examples=len(examples), acc=correct / len(examples), acc_norm=correct_norm / len(examples))
    log.info("multiple choice: %d examples, acc %.4f, acc_norm %.4f", score.examples, score.acc, score.acc_norm)
    return score


@torch.no_grad()
def _score_rows(
    model_fn: Callable[[torch.Tensor], torch.Tensor],
    rows: list[tuple[np.ndarray, int]],
    device: str | torch.device,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the summed log-likelihood and the number of scored tokens of each row."""
    width = max(len(row) for row, _ in rows)
    tokens = torch.zeros((len(rows), width), dtype=torch.int64)
    scored = torch.zeros((len(rows), width - 1), dtype=torch.bool)
    for index, (row, scored_count) in enumerate(rows):
        tokens[index, : len(row)] = torch.from_numpy(row)
        # Position t predicts token t + 1; the scored tokens are the last scored_count of the row.
        scored[index, len(row) - 1 - scored_count : len(row) - 1] = True

    logits = model_fn(tokens.to(device))[:, :-1].float()  # (B, T-1, V)
    targets = tokens[:, 1:].to(logits.device)
    # log_softmax at the target only, so no second (B, T-1, V) tensor is allocated.
    target_logits = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # (B, T-1)
    token_log_probs = target_logits - torch.logsumexp(logits, dim=-1)
    scored = scored.to(logits.device)
    totals = torch.where(scored, token_log_probs, 0.0).sum(dim=1).cpu()
    counts = scored.sum(dim=1).cpu()
    return totals, counts
