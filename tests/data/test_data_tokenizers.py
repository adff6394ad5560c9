"""Tokenizers, special token ids and tokenizer metadata."""

from __future__ import annotations

import json

import numpy as np
import pytest
from data_helpers import SAMPLE_TEXT, run_op, train_bpe

from gptpipe.data import streams_for, tokenizer_from_metadata
from gptpipe.data.tokenizer import ByteTokenizer, CharTokenizer


def test_byte_tokenizer_round_trip():
    tokenizer = ByteTokenizer()
    assert tokenizer.decode(tokenizer.encode("héllo")) == "héllo"


def test_byte_tokenizer_one_token_per_byte():
    assert ByteTokenizer().encode("é") == [0xC3, 0xA9]


@pytest.mark.parametrize(
    "attribute, expected",
    [("base_vocab_size", 256), ("unknown_token", 256), ("fragment_start_token", 257), ("vocab_size", 258)],
)
def test_byte_tokenizer_special_ids(attribute, expected):
    assert getattr(ByteTokenizer(), attribute) == expected


def test_byte_tokenizer_decodes_specials():
    assert ByteTokenizer().decode([104, 256, 105, 257]) == "h<?>i<fragment>"


def test_char_tokenizer_vocabulary_sorted():
    assert CharTokenizer("banana").characters == "abn"


def test_char_tokenizer_unknown_character():
    tokenizer = CharTokenizer("ab")
    assert tokenizer.encode("abz") == [0, 1, tokenizer.unknown_token]


def test_make_char_dataset_shakespeare_vocabulary(state, shakespeare):
    run_op(state, "make_char_dataset", str(shakespeare))
    assert streams_for(state).tokenizer.base_vocab_size == 65


def test_make_char_dataset_shakespeare_specials(state, shakespeare):
    run_op(state, "make_char_dataset", str(shakespeare))
    streams = streams_for(state)
    assert (streams.unknown_token, streams.fragment_start_token, streams.vocab_size) == (65, 66, 67)


def test_make_char_dataset_shakespeare_round_trip(state, shakespeare):
    run_op(state, "make_char_dataset", str(shakespeare))
    streams = streams_for(state)
    text = shakespeare.read_text(encoding="utf-8")
    assert streams.tokenizer.decode(streams.train[1:201].tolist()) == text[:200]


def test_make_char_dataset_token_unit(state, shakespeare):
    run_op(state, "make_char_dataset", str(shakespeare))
    assert streams_for(state).token_unit == "char"


def test_load_tokenizer_bpe_encodes_text(state, tmp_path):
    tokenizer_path = train_bpe(tmp_path / "tokenizer.json", [SAMPLE_TEXT])
    text_path = tmp_path / "a.txt"
    text_path.write_text(SAMPLE_TEXT, encoding="utf-8")
    run_op(state, "load_tokenizer", str(tokenizer_path))
    run_op(state, "load_text", str(text_path))
    streams = streams_for(state)
    assert len(streams.train) + len(streams.test) < len(SAMPLE_TEXT) // 2


def test_load_tokenizer_bpe_round_trip(state, tmp_path):
    run_op(state, "load_tokenizer", str(train_bpe(tmp_path / "tokenizer.json", [SAMPLE_TEXT])))
    text_path = tmp_path / "a.txt"
    text_path.write_text(SAMPLE_TEXT, encoding="utf-8")
    run_op(state, "load_text", str(text_path))
    tokenizer = streams_for(state).tokenizer
    assert tokenizer.decode(tokenizer.encode("the lazy dog")) == "the lazy dog"


def test_load_tokenizer_specials_after_vocabulary(state, tmp_path):
    run_op(state, "load_tokenizer", str(train_bpe(tmp_path / "tokenizer.json", [SAMPLE_TEXT], vocab_size=300)))
    text_path = tmp_path / "a.txt"
    text_path.write_text(SAMPLE_TEXT, encoding="utf-8")
    run_op(state, "load_text", str(text_path))
    streams = streams_for(state)
    base = streams.tokenizer.base_vocab_size
    assert (streams.unknown_token, streams.fragment_start_token, streams.vocab_size) == (base, base + 1, base + 2)


def test_load_tokenizer_token_unit_none(state, tmp_path):
    run_op(state, "load_tokenizer", str(train_bpe(tmp_path / "tokenizer.json", [SAMPLE_TEXT])))
    text_path = tmp_path / "a.txt"
    text_path.write_text(SAMPLE_TEXT, encoding="utf-8")
    run_op(state, "load_text", str(text_path))
    assert streams_for(state).token_unit is None


@pytest.mark.parametrize("kind", ["byte", "char", "bpe"])
def test_metadata_round_trip(tmp_path, kind):
    from gptpipe.data.tokenizer import BpeTokenizer

    if kind == "byte":
        tokenizer = ByteTokenizer()
    elif kind == "char":
        tokenizer = CharTokenizer("hello world")
    else:
        tokenizer = BpeTokenizer.from_file(str(train_bpe(tmp_path / "tokenizer.json", [SAMPLE_TEXT])))
    metadata = json.loads(json.dumps(tokenizer.to_metadata()))
    rebuilt = tokenizer_from_metadata(metadata)
    assert rebuilt.encode("hello world") == tokenizer.encode("hello world")


def test_set_vocab_size_specials(state, tmp_path):
    path = tmp_path / "tokens.bin"
    path.write_bytes(np.arange(1000, dtype="<u2").tobytes())
    run_op(state, "set_vocab_size", 50257, 2)
    run_op(state, "load_tokenized_train", str(path))
    streams = streams_for(state)
    assert (streams.unknown_token, streams.fragment_start_token, streams.vocab_size) == (50257, 50258, 50259)


def test_set_vocab_size_extra_tokens_counted(state, tmp_path):
    path = tmp_path / "tokens.bin"
    path.write_bytes(np.arange(1000, dtype="<u2").tobytes())
    run_op(state, "set_vocab_size", 50257, 47)
    run_op(state, "load_tokenized_train", str(path))
    assert streams_for(state).vocab_size == 50304


def test_special_ids_exposed(state, shakespeare):
    run_op(state, "make_char_dataset", str(shakespeare))
    assert streams_for(state).special_token_ids() == {"unknown": 65, "fragment_start": 66, "doc_start": 66}
