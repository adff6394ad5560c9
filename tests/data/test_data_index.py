"""Indexed folders: docset and token-file indexes, memory mapping, peak memory."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from data_helpers import SAMPLE_TEXT, make_state, run_op, train_bpe, write_llmc

from gptpipe.data import streams_for
from gptpipe.data.files import write_docset

DOCUMENTS = [f"document {index}: " + "words " * index for index in range(1, 40)]


def docset_folder(tmp_path):
    folder = tmp_path / "packs"
    folder.mkdir()
    write_docset(folder / "a.pack", DOCUMENTS[:20])
    write_docset(folder / "b.pack", DOCUMENTS[20:])
    return folder


def test_docset_index_matches_load_docset(tmp_path):
    folder = docset_folder(tmp_path)
    indexed, loaded = make_state(tmp_path, TEST_FRACTION=0.0), make_state(tmp_path, TEST_FRACTION=0.0)
    run_op(indexed, "index_docset_folder", str(folder))
    run_op(indexed, "load_indexed_docset_folder", str(folder))
    for name in ("a.pack", "b.pack"):
        run_op(loaded, "load_docset", str(folder / name))
    first, second = streams_for(indexed), streams_for(loaded)
    assert first.train.tolist() == second.train.tolist()


def test_docset_index_memory_mapped(tmp_path):
    folder = docset_folder(tmp_path)
    state = make_state(tmp_path)
    run_op(state, "index_docset_folder", str(folder))
    run_op(state, "load_indexed_docset_folder", str(folder))
    assert isinstance(streams_for(state).train, np.memmap)


def test_docset_index_document_count(tmp_path):
    folder = docset_folder(tmp_path)
    run_op(make_state(tmp_path), "index_docset_folder", str(folder))
    assert json.loads((folder / "gptpipe-index.json").read_text())["doc_count"] == len(DOCUMENTS)


def test_docset_index_test_is_whole_documents(tmp_path):
    folder = docset_folder(tmp_path)
    state = make_state(tmp_path, TEST_FRACTION=0.2)
    run_op(state, "index_docset_folder", str(folder))
    run_op(state, "load_indexed_docset_folder", str(folder))
    streams = streams_for(state)
    assert int(streams.test[0]) == streams.doc_start_token


def test_docset_index_not_rebuilt(tmp_path, caplog):
    folder = docset_folder(tmp_path)
    run_op(make_state(tmp_path), "index_docset_folder", str(folder))
    caplog.set_level("INFO", logger="gptpipe")
    run_op(make_state(tmp_path), "index_docset_folder", str(folder))
    assert "up to date" in caplog.text


def test_docset_index_bpe_tokenizer_adopted(tmp_path):
    folder = docset_folder(tmp_path)
    tokenizer = train_bpe(tmp_path / "tokenizer.json", [SAMPLE_TEXT] + DOCUMENTS)
    writer = make_state(tmp_path)
    run_op(writer, "load_tokenizer", str(tokenizer))
    run_op(writer, "index_docset_folder", str(folder))
    reader = make_state(tmp_path)
    run_op(reader, "load_indexed_docset_folder", str(folder))
    assert streams_for(reader).tokenizer.name == "bpe"


def test_docset_index_other_tokenizer_rejected(tmp_path):
    folder = docset_folder(tmp_path)
    run_op(make_state(tmp_path), "index_docset_folder", str(folder))
    state = make_state(tmp_path)
    run_op(state, "make_char_dataset", str(folder / "a.pack"))
    with pytest.raises(Exception, match="built with the byte tokenizer, but the script set the char tokenizer"):
        run_op(state, "load_indexed_docset_folder", str(folder))


@pytest.mark.parametrize("width", [2, 3, 4])
def test_tokenized_index_widths(tmp_path, width):
    folder = tmp_path / "tokens"
    folder.mkdir()
    values = np.arange(70_000, 71_000, dtype=np.uint32) if width > 2 else np.arange(1000, dtype=np.uint32)
    raw = values.astype("<u4").view(np.uint8).reshape(-1, 4)[:, :width].tobytes()
    (folder / "part0.bin").write_bytes(b"H" * 16 + raw)
    (folder / "part1.bin").write_bytes(b"H" * 16 + raw)
    state = make_state(tmp_path)
    run_op(state, "set_vocab_size", 80_000, 2)
    run_op(state, "index_tokenized_folder", str(folder), width, 16)
    run_op(state, "load_indexed_docset_folder", str(folder))
    streams = streams_for(state)
    assert np.concatenate([streams.train, streams.test]).tolist() == values.tolist() * 2


def test_tokenized_index_llmc_files(tmp_path):
    folder = tmp_path / "shards"
    folder.mkdir()
    write_llmc(folder / "shard0.bin", np.arange(500))
    write_llmc(folder / "shard1.bin", np.arange(500, 900))
    state = make_state(tmp_path)
    run_op(state, "set_vocab_size", 50257, 2)
    run_op(state, "index_tokenized_folder", str(folder), 2, 1024)
    run_op(state, "load_indexed_docset_folder", str(folder))
    streams = streams_for(state)
    assert np.concatenate([streams.train, streams.test]).tolist() == list(range(900))


# Mapped file pages count in RSS (a kernel with large folios maps a megabyte or more around each
# touched token), but they are page cache the kernel can drop. Reading the corpus into memory
# would show as anonymous memory, so the script reports the growth of RssAnon and the peak of
# numpy's allocations, which tracemalloc traces.
PEAK_MEMORY_SCRIPT = textwrap.dedent("""
    import sys, tracemalloc
    from omegaconf import OmegaConf
    import gptpipe.data.ops
    from gptpipe.data import FragmentSampler, streams_for
    from gptpipe.runtime.registry import OPERATIONS
    from gptpipe.runtime.state import RunState

    def anonymous_bytes():
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024

    folder = sys.argv[1]
    state = RunState(config=OmegaConf.create({}), run_dir=folder, values={"TEST_FRACTION": 0.05})
    before = anonymous_bytes()
    tracemalloc.start()
    OPERATIONS["set_vocab_size"].func(state, 50257, 2)
    OPERATIONS["load_indexed_docset_folder"].func(state, folder)
    streams = streams_for(state)
    streams.fingerprint()
    sampler = FragmentSampler(streams.train, 256, seed=0)
    for iteration in range(20):
        sampler.batch(16, iteration)
    _, peak_allocated = tracemalloc.get_traced_memory()
    print(len(streams.train) + len(streams.test), anonymous_bytes() - before, peak_allocated)
""")


def test_indexed_load_peak_memory(tmp_path):
    folder = tmp_path / "big"
    folder.mkdir()
    token_count = 150_000_000  # 300 MB of uint16 tokens
    tokens = np.memmap(folder / "gptpipe-tokens.bin", dtype="<u2", mode="w+", shape=(token_count,))
    tokens[::4096] = 7  # touches every page so the file is fully written
    tokens.flush()
    del tokens
    np.save(folder / "gptpipe-docs.npy", np.array([0], dtype=np.int64))
    info = {"format": 1, "kind": "tokens", "dtype": "<u2", "token_width": 2, "header_size": 0,
            "files": [], "token_count": token_count, "doc_count": 1, "max_token": 7}
    (folder / "gptpipe-index.json").write_text(json.dumps(info))
    result = subprocess.run([sys.executable, "-c", PEAK_MEMORY_SCRIPT, str(folder)],
                            capture_output=True, text=True, check=True, timeout=120)
    loaded, anonymous_growth, peak_allocated = (int(word) for word in result.stdout.split())
    assert loaded == token_count
    assert anonymous_growth < 30e6
    assert peak_allocated < 30e6
