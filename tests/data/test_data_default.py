"""The default corpus: the standard library's Python files when a script has no data operation."""

from __future__ import annotations

import logging
import time

import numpy as np
from data_helpers import make_state

from gptpipe.data import streams_for
from gptpipe.data.pipeline import DEFAULT_CORPUS_MAX_BYTES


def test_default_corpus_logged(state, caplog):
    caplog.set_level(logging.INFO, logger="gptpipe")
    streams_for(state)
    assert "default corpus" in caplog.text


def test_default_corpus_byte_tokens(state):
    assert streams_for(state).token_unit == "byte"


def test_default_corpus_capped(state):
    streams = streams_for(state)
    assert len(streams.train) + len(streams.test) <= DEFAULT_CORPUS_MAX_BYTES * 1.01


def test_default_corpus_several_megabytes(state):
    streams = streams_for(state)
    assert len(streams.train) > 2_000_000


def test_default_corpus_deterministic(tmp_path):
    first, second = streams_for(make_state(tmp_path)), streams_for(make_state(tmp_path))
    assert np.array_equal(first.train, second.train)


def test_default_corpus_fast(tmp_path):
    start = time.perf_counter()
    streams_for(make_state(tmp_path))
    assert time.perf_counter() - start < 5.0


def test_default_corpus_starts_with_python(state):
    streams = streams_for(state)
    text = streams.tokenizer.decode(streams.train[:2000].tolist())
    assert "import" in text or "def " in text
