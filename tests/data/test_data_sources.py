"""Text, folder, document pack and token-id sources, their combination and the test split."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pytest
from data_helpers import make_state, run_op, write_llmc

from gptpipe.data import streams_for
from gptpipe.data.files import write_docset
from gptpipe.data.joined import JoinedTokens


def text_file(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def all_tokens(streams):
    return np.concatenate([streams.train, streams.test])


def test_load_text_default_byte_tokenizer(state, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="gptpipe")
    run_op(state, "load_text", str(text_file(tmp_path, "a.txt", "hello world")))
    assert "using the byte tokenizer" in caplog.text


def test_load_text_document_marker(state, tmp_path):
    run_op(state, "load_text", str(text_file(tmp_path, "a.txt", "hello world")))
    streams = streams_for(state)
    assert all_tokens(streams).tolist() == [257] + list(b"hello world")


def test_load_text_doc_start_token(state, tmp_path):
    run_op(state, "load_text", str(text_file(tmp_path, "a.txt", "hello world")))
    assert streams_for(state).doc_start_token == 257


def test_load_text_tail_is_test(tmp_path):
    state = make_state(tmp_path, TEST_FRACTION=0.25)
    run_op(state, "load_text", str(text_file(tmp_path, "a.txt", "abcdefghijklmno")))
    assert bytes(streams_for(state).test.tolist()) == b"lmno"


def test_load_text_invalid_bytes_replaced(state, tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"ok\xff\xfeok")
    run_op(state, "load_text", str(path))
    decoded = streams_for(state).tokenizer.decode(all_tokens(streams_for(state)).tolist())
    assert decoded == "<fragment>ok\ufffd\ufffdok"


def test_load_text_invalid_bytes_logged(state, tmp_path, caplog):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"ok\xff\xfeok")
    caplog.set_level(logging.INFO, logger="gptpipe")
    run_op(state, "load_text", str(path))
    assert "replaced 2 invalid UTF-8 sequences" in caplog.text


def folder_with_binary(tmp_path):
    folder = tmp_path / "corpus"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("first document", encoding="utf-8")
    (folder / "sub" / "b.py").write_text("second document", encoding="utf-8")
    (folder / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    return folder


def test_load_folder_documents(state, tmp_path):
    run_op(state, "load_folder", str(folder_with_binary(tmp_path)))
    decoded = streams_for(state).tokenizer.decode(all_tokens(streams_for(state)).tolist())
    assert decoded == "<fragment>first document<fragment>second document"


def test_load_folder_binary_skipped_logged(state, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="gptpipe")
    run_op(state, "load_folder", str(folder_with_binary(tmp_path)))
    assert "skipped 1 binary files" in caplog.text


def test_load_folder_test_is_last_document(tmp_path):
    state = make_state(tmp_path, TEST_FRACTION=0.4)
    run_op(state, "load_folder", str(folder_with_binary(tmp_path)))
    streams = streams_for(state)
    assert streams.tokenizer.decode(streams.test.tolist()) == "<fragment>second document"


def test_load_docset_documents(state, tmp_path):
    path = tmp_path / "pack.bin"
    write_docset(path, ["alpha", "beta", "gamma é"])
    run_op(state, "load_docset", str(path))
    decoded = streams_for(state).tokenizer.decode(all_tokens(streams_for(state)).tolist())
    assert decoded == "<fragment>alpha<fragment>beta<fragment>gamma é"


def test_combined_text_and_folder(state, tmp_path):
    run_op(state, "make_byte_tokenizer")
    run_op(state, "load_text", str(text_file(tmp_path, "a.txt", "x" * 100)))
    run_op(state, "load_folder", str(folder_with_binary(tmp_path)))
    streams = streams_for(state)
    assert len(streams.train) + len(streams.test) == 101 + 15 + 16


def test_tokenized_train_uint16(state, tmp_path):
    path = tmp_path / "train.bin"
    path.write_bytes(np.arange(2000, dtype="<u2").tobytes())
    run_op(state, "set_vocab_size", 50257, 2)
    run_op(state, "load_tokenized_train", str(path))
    assert all_tokens(streams_for(state)).tolist() == list(range(2000))


def test_tokenized_train_memory_mapped(state, tmp_path):
    path = tmp_path / "train.bin"
    path.write_bytes(np.arange(2000, dtype="<u2").tobytes())
    run_op(state, "set_vocab_size", 50257, 2)
    run_op(state, "load_tokenized_train", str(path))
    assert isinstance(streams_for(state).train, np.memmap)


def test_tokenized_llmc_header_skipped(state, tmp_path):
    path = write_llmc(tmp_path / "train.bin", np.arange(100, 1100))
    run_op(state, "set_vocab_size", 50257, 2)
    run_op(state, "load_tokenized_train", str(path))
    assert all_tokens(streams_for(state)).tolist() == list(range(100, 1100))


def test_tokenized_test_file_used(state, tmp_path):
    train = write_llmc(tmp_path / "train.bin", np.full(1000, 7))
    test = write_llmc(tmp_path / "test.bin", np.full(300, 9))
    run_op(state, "set_vocab_size", 50257, 2)
    run_op(state, "load_tokenized_train", str(train))
    run_op(state, "load_tokenized_test", str(test))
    streams = streams_for(state)
    assert (len(streams.train), len(streams.test)) == (1000, 300)


def test_tokenized_doc_start_token(state, tmp_path):
    path = tmp_path / "train.bin"
    path.write_bytes(np.arange(2000, dtype="<u2").tobytes())
    run_op(state, "set_vocab_size", 50257, 2)
    run_op(state, "set_doc_start_token", 50256)
    run_op(state, "load_tokenized_train", str(path))
    assert streams_for(state).doc_start_token == 50256


def test_tokenized_token_unit_none(state, tmp_path):
    path = tmp_path / "train.bin"
    path.write_bytes(np.arange(2000, dtype="<u2").tobytes())
    run_op(state, "set_vocab_size", 50257, 2)
    run_op(state, "load_tokenized_train", str(path))
    assert streams_for(state).token_unit is None


def test_streams_cached(state, tmp_path):
    run_op(state, "load_text", str(text_file(tmp_path, "a.txt", "hello world")))
    assert streams_for(state) is streams_for(state)


def test_streams_rebuilt_after_data_op(state, tmp_path):
    run_op(state, "load_text", str(text_file(tmp_path, "a.txt", "hello world")))
    first = streams_for(state)
    run_op(state, "load_text", str(text_file(tmp_path, "b.txt", "more text")))
    assert len(streams_for(state).train) > len(first.train)


def test_fingerprint_stable(tmp_path):
    path = text_file(tmp_path, "a.txt", "hello world " * 100)
    first, second = make_state(tmp_path), make_state(tmp_path)
    run_op(first, "load_text", str(path))
    run_op(second, "load_text", str(path))
    assert streams_for(first).fingerprint() == streams_for(second).fingerprint()


def test_fingerprint_differs(tmp_path):
    first, second = make_state(tmp_path), make_state(tmp_path)
    run_op(first, "load_text", str(text_file(tmp_path, "a.txt", "hello world " * 100)))
    run_op(second, "load_text", str(text_file(tmp_path, "b.txt", "hello wordl " * 100)))
    assert streams_for(first).fingerprint() != streams_for(second).fingerprint()


@pytest.mark.parametrize("fraction", [0.05, 0.1, 0.3])
def test_char_dataset_split_fraction(tmp_path, shakespeare, fraction):
    state = make_state(tmp_path, TEST_FRACTION=fraction)
    run_op(state, "make_char_dataset", str(shakespeare))
    streams = streams_for(state)
    assert abs(len(streams.test) / (len(streams.train) + len(streams.test)) - fraction) < 1e-5


def marker_positions(tokens, marker):
    return np.flatnonzero(np.asarray(tokens) == marker).tolist()


def test_stream_doc_starts_match_markers_across_sources(state, tmp_path):
    # A text file, a folder of documents and a docset, split by TEST_FRACTION and joined.
    run_op(state, "make_byte_tokenizer")
    run_op(state, "load_text", str(text_file(tmp_path, "a.txt", "first text " * 40)))
    run_op(state, "load_folder", str(folder_with_binary(tmp_path)))
    pack = tmp_path / "pack.bin"
    write_docset(pack, ["alpha " * 30, "beta " * 30, "gamma " * 30])
    run_op(state, "load_docset", str(pack))
    streams = streams_for(state)
    marker = streams.doc_start_token
    assert marker is not None
    assert streams.train_doc_starts.tolist() == marker_positions(streams.train, marker)
    assert streams.test_doc_starts.tolist() == marker_positions(streams.test, marker)
    assert len(streams.train_doc_starts) >= 4
    assert len(streams.test_doc_starts) >= 1


def test_stream_doc_starts_scan_token_files(state, tmp_path):
    tokens = np.arange(2000, dtype="<u2") % 300
    path = tmp_path / "train.bin"
    path.write_bytes(tokens.tobytes())
    run_op(state, "set_vocab_size", 50257, 2)
    run_op(state, "set_doc_start_token", 7)
    run_op(state, "load_tokenized_train", str(path))
    streams = streams_for(state)
    assert streams.train_doc_starts.tolist() == marker_positions(streams.train, 7)
    assert streams.test_doc_starts.tolist() == marker_positions(streams.test, 7)


def test_stream_without_documents_has_no_doc_starts(state, tmp_path):
    path = tmp_path / "train.bin"
    path.write_bytes(np.arange(2000, dtype="<u2").tobytes())
    run_op(state, "set_vocab_size", 50257, 2)
    run_op(state, "load_tokenized_train", str(path))
    streams = streams_for(state)
    assert streams.train_doc_starts is None
    assert streams.test_doc_starts is None


def test_memory_mapped_sources_joined_without_copy(state, tmp_path):
    first, second = tmp_path / "first.bin", tmp_path / "second.bin"
    first.write_bytes(np.arange(0, 2000, dtype="<u2").tobytes())
    second.write_bytes(np.arange(2000, 3000, dtype="<u2").tobytes())
    run_op(state, "set_vocab_size", 50257, 2)
    run_op(state, "load_tokenized_train", str(first))
    run_op(state, "load_tokenized_train", str(second))
    streams = streams_for(state)
    assert isinstance(streams.train, JoinedTokens)
    assert np.asarray(streams.train).tolist() == list(range(0, 1900)) + list(range(2000, 2950))
    copied = dataclasses.replace(streams, train=np.asarray(streams.train), test=np.asarray(streams.test))
    assert streams.fingerprint() == copied.fingerprint()
