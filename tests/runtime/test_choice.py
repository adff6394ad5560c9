"""Multiple-choice token files and log-likelihood scoring."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from gptpipe.errors import DataError
from gptpipe.runtime.choice import ChoiceExample, read_choice_file, score_choices

VOCAB_SIZE = 50


def encode_examples(examples: list[tuple[list[int], list[list[int]], int]]) -> bytes:
    """Encode (context, endings, label) triples in the uint16 little-endian choice format."""
    values: list[int] = []
    for context, endings, label in examples:
        values += [len(context), *context, len(endings)]
        for ending in endings:
            values += [len(ending), *ending]
        values.append(label)
    return np.array(values, dtype="<u2").tobytes()


def write_examples(path: Path, examples) -> Path:
    path.write_bytes(encode_examples(examples))
    return path


# Example 0 takes 11 values (22 bytes) and example 1 takes 15 (30 bytes), so example 1 starts at
# byte offset 22, its label is at byte offset 50 and the file has 52 bytes.
TWO_EXAMPLES = [
    ([1, 2, 3], [[4], [5, 6]], 1),
    ([7, 8, 9], [[10, 11], [12], [13, 14, 15]], 2),
]


def read_error(path: Path, vocab_size: int = VOCAB_SIZE) -> str:
    with pytest.raises(DataError) as caught:
        read_choice_file(path, vocab_size)
    return str(caught.value)


# ---------------------------------------------------------------- reading


def test_read_round_trip(tmp_path):
    examples = read_choice_file(write_examples(tmp_path / "choice.bin", TWO_EXAMPLES), VOCAB_SIZE)
    assert len(examples) == 2
    for parsed, (context, endings, label) in zip(examples, TWO_EXAMPLES):
        assert parsed.context.tolist() == context
        assert [ending.tolist() for ending in parsed.endings] == endings
        assert parsed.label == label
    assert [example.offset for example in examples] == [0, 22]


def test_read_token_dtype(tmp_path):
    examples = read_choice_file(write_examples(tmp_path / "choice.bin", TWO_EXAMPLES), VOCAB_SIZE)
    assert examples[0].context.dtype == np.int64


def test_read_large_token_ids(tmp_path):
    path = write_examples(tmp_path / "choice.bin", [([65535, 40000], [[50257]], 0)])
    example = read_choice_file(path, 65536)[0]
    assert example.context.tolist() == [65535, 40000]
    assert example.endings[0].tolist() == [50257]


@pytest.mark.parametrize(
    "cut_bytes, expected",
    [
        (22 + 6, "example 1 (counting from 0), byte offset 24: the file ends in the middle of the example while reading the context"),
        (22 + 10, "byte offset 32: the file ends in the middle of the example while reading the length of ending 0"),
        (22 + 28, "byte offset 50: the file ends in the middle of the example while reading the index of the correct ending"),
        (22 + 3, "example 1 (counting from 0), byte offset 24: the file ends in the middle of the example"),
        (22 + 30 + 1, "example 2 (counting from 0), byte offset 52: the file ends in the middle of a uint16 value"),
    ],
)
def test_read_truncated(tmp_path, cut_bytes, expected):
    path = tmp_path / "choice.bin"
    path.write_bytes((encode_examples(TWO_EXAMPLES) + b"\0\0")[:cut_bytes])
    message = read_error(path)
    assert str(path) in message
    assert expected in message


@pytest.mark.parametrize(
    "examples, expected",
    [
        (
            [TWO_EXAMPLES[0], ([7, 8, 9], [[10, 11], [12], [13, 60, 15]], 2)],
            "example 1 (counting from 0), byte offset 46: token id 60 in ending 2 is not below the model's vocabulary size 50",
        ),
        (
            [([1, 55, 3], [[4]], 0)],
            "example 0 (counting from 0), byte offset 4: token id 55 in the context is not below",
        ),
        (
            [TWO_EXAMPLES[0], ([7, 8, 9], [[10, 11], [12]], 2)],
            "example 1 (counting from 0), byte offset 42: the correct-ending index 2 is out of range for 2 endings",
        ),
        (
            [([], [[4]], 0)],
            "example 0 (counting from 0), byte offset 0: the context is empty",
        ),
        (
            [([1], [], 0)],
            "example 0 (counting from 0), byte offset 4: the example has no endings",
        ),
        (
            [([1], [[2], []], 0)],
            "example 0 (counting from 0), byte offset 10: ending 1 is empty",
        ),
    ],
)
def test_read_invalid(tmp_path, examples, expected):
    path = write_examples(tmp_path / "choice.bin", examples)
    assert expected in read_error(path)


def test_read_token_at_vocab_size(tmp_path):
    path = write_examples(tmp_path / "choice.bin", [([1, 2], [[VOCAB_SIZE]], 0)])
    assert f"token id {VOCAB_SIZE} in ending 0" in read_error(path)


def test_read_empty_file(tmp_path):
    path = tmp_path / "choice.bin"
    path.write_bytes(b"")
    assert "is empty" in read_error(path)


def test_read_missing_file(tmp_path):
    assert "not found" in read_error(tmp_path / "absent.bin")


# ---------------------------------------------------------------- scoring


def successor_model(idx: torch.Tensor) -> torch.Tensor:
    """A causal fake model that predicts token + 1 (mod VOCAB_SIZE) with probability near 1."""
    logits = torch.full((*idx.shape, VOCAB_SIZE), -10.0)
    logits.scatter_(-1, ((idx + 1) % VOCAB_SIZE).unsqueeze(-1), 10.0)
    return logits  # (B, T, V)


def uniform_model(idx: torch.Tensor) -> torch.Tensor:
    return torch.zeros((*idx.shape, VOCAB_SIZE))


def counting_examples(count: int, seed: int = 0, ending_count: int = 4) -> list[ChoiceExample]:
    """Examples whose correct ending keeps counting up by one; wrong endings start at +3 and count by three."""
    generator = np.random.default_rng(seed)
    examples = []
    for index in range(count):
        context_length = int(generator.integers(1, 12))
        context = (int(generator.integers(VOCAB_SIZE)) + np.arange(context_length)) % VOCAB_SIZE
        label = index % ending_count
        endings = []
        for ending_index in range(ending_count):
            steps = np.arange(int(generator.integers(1, 6)))
            if ending_index == label:
                ending = context[-1] + 1 + steps
            else:
                ending = context[-1] + 3 + 3 * steps
            endings.append(ending % VOCAB_SIZE)
        examples.append(ChoiceExample(context, tuple(endings), label, 0))
    return examples


def test_score_known_answer():
    score = score_choices(successor_model, counting_examples(40), max_len=32)
    assert score.examples == 40
    assert score.acc == 1.0
    assert score.acc_norm == 1.0


def test_score_uniform_at_chance():
    generator = np.random.default_rng(1)
    examples = [
        ChoiceExample(
            generator.integers(VOCAB_SIZE, size=5),
            tuple(generator.integers(VOCAB_SIZE, size=3) for _ in range(4)),
            index % 4,
            0,
        )
        for index in range(40)
    ]
    score = score_choices(uniform_model, examples, max_len=32)
    assert score.acc == 0.25
    assert score.acc_norm == 0.25


def test_score_acc_prefers_short_ending():
    # Uniform probabilities: total log-likelihood falls with length, the per-token mean does not.
    example = ChoiceExample(np.array([1, 2]), (np.array([3, 4, 5]), np.array([6])), 0, 0)
    score = score_choices(uniform_model, [example], max_len=32)
    assert score.acc == 0.0
    assert score.acc_norm == 1.0


@pytest.mark.parametrize("batch_tokens", [1, 40, 200, 100_000])
def test_score_batching_invariant(batch_tokens):
    # Logits depend on the current token only, so right padding cannot change any score.
    table = torch.randn(VOCAB_SIZE, VOCAB_SIZE, generator=torch.Generator().manual_seed(0)) * 3
    examples = counting_examples(25, seed=3)
    reference = score_choices(lambda idx: table[idx], examples, max_len=32, batch_tokens=1)
    score = score_choices(lambda idx: table[idx], examples, max_len=32, batch_tokens=batch_tokens)
    assert 0.0 < reference.acc < 1.0
    assert score == reference


def test_score_batch_token_limit():
    examples = counting_examples(20, seed=4)
    shapes = []

    def model(idx: torch.Tensor) -> torch.Tensor:
        shapes.append(tuple(idx.shape))
        return successor_model(idx)

    score_choices(model, examples, max_len=32, batch_tokens=60)
    assert len(shapes) > 1
    assert all(rows * width <= 60 or rows == 4 for rows, width in shapes)


def test_score_truncates_context():
    long_context = np.arange(100) % VOCAB_SIZE
    example = ChoiceExample(long_context, (np.array([0, 1]), np.array([7, 7])), 0, 0)
    widths = []

    def model(idx: torch.Tensor) -> torch.Tensor:
        widths.append(idx.shape[1])
        return successor_model(idx)

    score = score_choices(model, [example], max_len=16)
    assert widths == [16]
    assert score.acc == 1.0


def test_score_no_grad():
    grad_enabled = []

    def model(idx: torch.Tensor) -> torch.Tensor:
        grad_enabled.append(torch.is_grad_enabled())
        return successor_model(idx)

    score_choices(model, counting_examples(3), max_len=32)
    assert grad_enabled == [False]


def test_score_no_examples():
    with pytest.raises(DataError, match="no multiple-choice examples"):
        score_choices(successor_model, [], max_len=32)


def test_score_read_file_end_to_end(tmp_path):
    examples = counting_examples(12, seed=5)
    triples = [(e.context.tolist(), [ending.tolist() for ending in e.endings], e.label) for e in examples]
    parsed = read_choice_file(write_examples(tmp_path / "choice.bin", triples), VOCAB_SIZE)
    assert score_choices(successor_model, parsed, max_len=32).acc == 1.0
