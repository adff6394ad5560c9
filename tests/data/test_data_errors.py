"""Every user-caused data error: its type and the message text."""

from __future__ import annotations

import re

import numpy as np
import pytest
from data_helpers import check_op, make_state, run_op, write_llmc

from gptpipe.data import FragmentSampler, eval_batches, streams_for
from gptpipe.errors import DataError


def uint16_file(tmp_path, values, name="tokens.bin"):
    path = tmp_path / name
    path.write_bytes(np.asarray(values, dtype="<u2").tobytes())
    return path


def missing_file_parent_exists(state, tmp_path):
    run_op(state, "load_text", str(tmp_path / "nope.txt"))


def missing_file_parent_missing(state, tmp_path):
    run_op(state, "load_text", str(tmp_path / "gone" / "nope.txt"))


def missing_folder(state, tmp_path):
    run_op(state, "load_folder", str(tmp_path / "gone"))


def empty_text(state, tmp_path):
    (tmp_path / "empty.txt").write_bytes(b"")
    run_op(state, "load_text", str(tmp_path / "empty.txt"))


def empty_docset(state, tmp_path):
    (tmp_path / "empty.pack").write_bytes(b"")
    run_op(state, "load_docset", str(tmp_path / "empty.pack"))


def folder_only_binary(state, tmp_path):
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "blob").write_bytes(b"\x00\x01\x02")
    run_op(state, "load_folder", str(tmp_path / "bin"))


def empty_token_file(state, tmp_path):
    run_op(state, "load_tokenized_train", str(uint16_file(tmp_path, [])))


def token_out_of_range(state, tmp_path):
    run_op(state, "set_vocab_size", 50257, 2)
    run_op(state, "load_tokenized_train", str(uint16_file(tmp_path, [1] * 10 + [60000] + [1] * 5)))
    streams_for(state)


def llmc_token_out_of_range(state, tmp_path):
    run_op(state, "set_vocab_size", 1000, 2)
    run_op(state, "load_tokenized_train", str(write_llmc(tmp_path / "llmc.bin", [5, 6, 1002, 7])))
    streams_for(state)


def indexed_token_out_of_range(state, tmp_path):
    folder = tmp_path / "shards"
    folder.mkdir()
    uint16_file(folder, [1] * 8, "a.bin")
    uint16_file(folder, [1, 2, 3, 4000, 5], "b.bin")
    run_op(state, "set_vocab_size", 1000, 2)
    run_op(state, "index_tokenized_folder", str(folder), 2, 0)
    run_op(state, "load_indexed_docset_folder", str(folder))
    streams_for(state)


def odd_token_file(state, tmp_path):
    (tmp_path / "odd.bin").write_bytes(b"\x01\x00\x02")
    run_op(state, "load_tokenized_train", str(tmp_path / "odd.bin"))


def llmc_count_mismatch(state, tmp_path):
    run_op(state, "load_tokenized_train", str(write_llmc(tmp_path / "llmc.bin", [1, 2, 3], count=5)))


def truncated_docset_length(state, tmp_path):
    (tmp_path / "t.pack").write_bytes((3).to_bytes(4, "little") + b"abc" + b"\x05\x00")
    run_op(state, "load_docset", str(tmp_path / "t.pack"))


def truncated_docset_body(state, tmp_path):
    (tmp_path / "t.pack").write_bytes((3).to_bytes(4, "little") + b"abc" + (10).to_bytes(4, "little") + b"xy")
    run_op(state, "load_docset", str(tmp_path / "t.pack"))


def fragment_longer_than_test(state, tmp_path):
    (tmp_path / "a.txt").write_text("x" * 1000, encoding="utf-8")
    run_op(state, "load_text", str(tmp_path / "a.txt"))
    streams = streams_for(state)
    eval_batches(streams.test, 2, 4, 64, seed=0)


def fragment_longer_than_train():
    FragmentSampler(np.zeros(10, dtype=np.uint16), 64, seed=0)


def text_after_vocab_size(state, tmp_path):
    (tmp_path / "a.txt").write_text("hello", encoding="utf-8")
    run_op(state, "set_vocab_size", 50257, 2)
    run_op(state, "load_text", str(tmp_path / "a.txt"))


def too_few_extra_tokens(state, tmp_path):
    run_op(state, "set_vocab_size", 50257, 1)


def token_ids_without_vocab(state, tmp_path):
    run_op(state, "load_tokenized_train", str(uint16_file(tmp_path, [1, 2, 3])))
    streams_for(state)


def vocab_without_data(state, tmp_path):
    run_op(state, "set_vocab_size", 50257, 2)
    streams_for(state)


def doc_start_outside_vocab(state, tmp_path):
    run_op(state, "set_vocab_size", 1000, 2)
    run_op(state, "set_doc_start_token", 5000)
    run_op(state, "load_tokenized_train", str(uint16_file(tmp_path, [1, 2, 3])))
    streams_for(state)


def index_missing(state, tmp_path):
    run_op(state, "load_indexed_docset_folder", str(tmp_path))


def bad_token_width(state, tmp_path):
    run_op(state, "index_tokenized_folder", str(tmp_path), 5, 0)


def bad_tokenizer_file(state, tmp_path):
    (tmp_path / "tokenizer.json").write_text("{not json", encoding="utf-8")
    run_op(state, "load_tokenizer", str(tmp_path / "tokenizer.json"))


def binary_op_not_prime(state, tmp_path):
    run_op(state, "make_binary_op_dataset", 12, "/", 0.5)


def binary_op_unknown_operator(state, tmp_path):
    run_op(state, "make_binary_op_dataset", 97, "^", 0.5)


def binary_op_with_text(state, tmp_path):
    (tmp_path / "a.txt").write_text("hello", encoding="utf-8")
    run_op(state, "make_binary_op_dataset", 97, "+", 0.5)
    run_op(state, "load_text", str(tmp_path / "a.txt"))


CASES = [
    (missing_file_parent_exists, r"data file not found: .*nope\.txt \(the folder .* exists; check the name\)"),
    (missing_file_parent_missing, r"data file not found: .*nope\.txt \(its parent folder .*gone does not exist"),
    (missing_folder, r"data folder not found: .*gone \(the folder .* exists"),
    (empty_text, r"load_text\(empty\.txt\) contains no text; the dataset is empty"),
    (empty_docset, r"load_docset\(empty\.pack\) contains no text; the dataset is empty"),
    (folder_only_binary, r"load_folder\(bin\) contains no text; the dataset is empty"),
    (empty_token_file, r"token file .*tokens\.bin contains no tokens; the dataset is empty"),
    (token_out_of_range, r"token id 60000 in .*tokens\.bin at byte offset 20 is at or above the vocabulary size 50259"),
    (llmc_token_out_of_range, r"token id 1002 in .*llmc\.bin at byte offset 1028 is at or above the vocabulary size 1002"),
    (indexed_token_out_of_range, r"token id 4000 in .*b\.bin at byte offset 6 is at or above the vocabulary size 1002"),
    (odd_token_file, r"has 3 bytes of tokens, not a multiple of the token width 2 bytes"),
    (llmc_count_mismatch, r"declares 5 tokens \(10 bytes\) in its header but holds 6 bytes"),
    (truncated_docset_length, r"truncated: the record at byte offset 7 has 2 of the 4 length bytes"),
    (truncated_docset_body, r"truncated: the record at byte offset 7 declares 10 bytes but only 2 remain"),
    (fragment_longer_than_test, r"fragment length 64 \(f in TRAIN_CONFIG\) needs at least 65 tokens, but the test "
                                r"set has 50; lower f in TRAIN_CONFIG or raise TEST_FRACTION"),
    (text_after_vocab_size, r"load_text reads text, but set_vocab_size\(\) declared token-id data and no tokenizer "
                            r"is set; call load_tokenizer\(path\)"),
    (too_few_extra_tokens, r"set_vocab_size\(50257, 1\) leaves no room for gptpipe's 2 special tokens"),
    (token_ids_without_vocab, r"loads token ids but sets no vocabulary; call set_vocab_size\(N, K\)"),
    (vocab_without_data, r"no data was loaded; add load_tokenized_train\(path\)"),
    (doc_start_outside_vocab, r"doc start token 5000 is outside the vocabulary of 1002 tokens"),
    (index_missing, r"no gptpipe index in .* \(gptpipe-index\.json not found\); run index_docset_folder"),
    (bad_token_width, r"token_width must be 2, 3 or 4 bytes, got 5"),
    (bad_tokenizer_file, r"cannot read tokenizer file .*tokenizer\.json"),
    (binary_op_not_prime, r"division needs a prime modulus .* but 12 is not prime"),
    (binary_op_unknown_operator, r"unknown operator '\^'; use one of '\+', '-', '\*', '/'"),
    (binary_op_with_text, r"load_text\(a\.txt\) cannot be combined with make_binary_op_dataset\(\)"),
]


@pytest.mark.parametrize("case, message", CASES, ids=[case.__name__ for case, _ in CASES])
def test_data_error_message(tmp_path, case, message):
    state = make_state(tmp_path)
    with pytest.raises(DataError, match=message):
        case(state, tmp_path)


def test_fragment_longer_than_train_message():
    with pytest.raises(DataError, match=re.escape("but the train set has 10; lower f in TRAIN_CONFIG or load more data")):
        fragment_longer_than_train()


PLAN_CASES = [
    (("load_text", "a.txt"), ("set_vocab_size",), r"set_vocab_size\(\) declared token-id data and no tokenizer"),
    (("set_vocab_size", 50257, 0), (), r"leaves no room for gptpipe's 2 special tokens"),
    (("index_tokenized_folder", ".", 1, 0), (), r"token_width must be 2, 3 or 4 bytes, got 1"),
    (("make_binary_op_dataset", 97, "+", 1.5), (), r"train_fraction must be between 0 and 1"),
]


@pytest.mark.parametrize("call, before, message", PLAN_CASES, ids=[call[0] for call, _, _ in PLAN_CASES])
def test_plan_check_message(call, before, message):
    with pytest.raises(DataError, match=message):
        check_op(*call, before=before)


def test_plan_check_odd_token_file(tmp_path):
    (tmp_path / "odd.bin").write_bytes(b"\x01\x00\x02")
    with pytest.raises(DataError, match="not a multiple of the token width 2 bytes"):
        check_op("load_tokenized_train", str(tmp_path / "odd.bin"))


def test_plan_check_index_missing(tmp_path):
    with pytest.raises(DataError, match="gptpipe-index.json not found"):
        check_op("load_indexed_docset_folder", str(tmp_path))


def test_plan_check_index_built_earlier(tmp_path):
    check_op("load_indexed_docset_folder", str(tmp_path), before=("index_docset_folder",))


def test_plan_check_text_after_tokenizer(tmp_path):
    check_op("load_text", "a.txt", before=("set_vocab_size", "load_tokenizer"))
