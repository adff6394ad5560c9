"""make_binary_op_dataset: every equation, the split and the batch layout."""

from __future__ import annotations

import numpy as np
import pytest
from data_helpers import make_state, run_op

from gptpipe.data import FragmentSampler, streams_for


def equations(tmp_path, modulus, operator, fraction=0.5):
    state = make_state(tmp_path)
    run_op(state, "make_binary_op_dataset", modulus, operator, fraction)
    return streams_for(state)


@pytest.mark.parametrize(
    "operator, count, result",
    [
        ("+", 97 * 97, lambda a, b: (a + b) % 97),
        ("-", 97 * 97, lambda a, b: (a - b) % 97),
        ("*", 97 * 97, lambda a, b: (a * b) % 97),
        ("/", 97 * 96, lambda a, b: (a * pow(int(b), -1, 97)) % 97),
    ],
)
def test_every_equation_correct(tmp_path, operator, count, result):
    streams = equations(tmp_path, 97, operator)
    rows = np.concatenate([streams.train, streams.test])
    assert len({tuple(row) for row in rows}) == count
    assert all(row[4] == result(row[0], row[2]) for row in rows)


def test_split_fraction(tmp_path):
    streams = equations(tmp_path, 97, "+", 0.3)
    assert len(streams.train) == round(97 * 97 * 0.3)


def test_split_seeded(tmp_path):
    assert np.array_equal(equations(tmp_path, 31, "*").train, equations(tmp_path, 31, "*").train)


def test_vocabulary(tmp_path):
    streams = equations(tmp_path, 97, "+")
    assert (streams.vocab_size, streams.unknown_token, streams.fragment_start_token) == (104, 102, 103)


def test_batch_last_target_is_result(tmp_path):
    streams = equations(tmp_path, 97, "+")
    x, y = FragmentSampler(streams.train, 4, seed=0).batch(64, 0)
    assert bool(((x[:, 0] + x[:, 2]) % 97 == y[:, -1]).all())


def test_batch_input_ends_with_equals(tmp_path):
    streams = equations(tmp_path, 97, "+")
    x, _ = FragmentSampler(streams.train, 4, seed=0).batch(64, 0)
    assert bool((x[:, -1] == 101).all())


def test_tokenizer_decodes_equation(tmp_path):
    streams = equations(tmp_path, 7, "-")
    assert streams.tokenizer.decode([3, 8, 5, 11, 5]) == "3 - 5 = 5"


def test_tokenizer_encodes_equation(tmp_path):
    streams = equations(tmp_path, 7, "-")
    assert streams.tokenizer.encode("3-5=5") == [3, 8, 5, 11, 5]
