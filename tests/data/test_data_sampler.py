"""FragmentSampler and eval_batches: determinism, rank slices, document starts, records."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gptpipe.data import FragmentSampler, eval_batches

TOKENS = np.arange(10_000, dtype=np.uint16)


def test_batch_shapes():
    x, y = FragmentSampler(TOKENS, 32, seed=1).batch(8, 0)
    assert (tuple(x.shape), tuple(y.shape)) == ((8, 32), (8, 32))


def test_batch_dtype_int64():
    x, y = FragmentSampler(TOKENS, 32, seed=1).batch(8, 0)
    assert (x.dtype, y.dtype) == (torch.int64, torch.int64)


def test_targets_are_next_tokens():
    x, y = FragmentSampler(TOKENS, 32, seed=1).batch(8, 0)
    assert torch.equal(y, x + 1)


def test_same_seed_iteration_same_batch():
    first = FragmentSampler(TOKENS, 32, seed=5).batch(16, 7)
    second = FragmentSampler(TOKENS, 32, seed=5).batch(16, 7)
    assert torch.equal(first[0], second[0])


def test_other_iteration_other_batch():
    sampler = FragmentSampler(TOKENS, 32, seed=5)
    assert not torch.equal(sampler.batch(16, 7)[0], sampler.batch(16, 8)[0])


def test_other_seed_other_batch():
    first = FragmentSampler(TOKENS, 32, seed=5).batch(16, 7)
    second = FragmentSampler(TOKENS, 32, seed=6).batch(16, 7)
    assert not torch.equal(first[0], second[0])


@pytest.mark.parametrize("world_size", [2, 4])
def test_rank_slices_concatenate(world_size):
    sampler = FragmentSampler(TOKENS, 16, seed=3)
    whole_x, whole_y = sampler.batch(16, 11)
    parts = [sampler.batch(16, 11, rank, world_size) for rank in range(world_size)]
    assert torch.equal(torch.cat([x for x, _ in parts]), whole_x)


def test_rank_slice_targets_concatenate():
    sampler = FragmentSampler(TOKENS, 16, seed=3)
    _, whole_y = sampler.batch(8, 2)
    parts = [sampler.batch(8, 2, rank, 2)[1] for rank in range(2)]
    assert torch.equal(torch.cat(parts), whole_y)


def test_uneven_world_size_rejected():
    with pytest.raises(Exception, match="does not divide evenly over 3 devices"):
        FragmentSampler(TOKENS, 16, seed=3).batch(8, 0, 0, 3)


def documents(lengths, marker=999):
    parts = [np.concatenate(([marker], np.full(length, index))) for index, length in enumerate(lengths)]
    return np.concatenate(parts).astype(np.uint16)


def test_doc_fragments_stay_in_document():
    tokens = documents([50, 200, 80, 300, 120])
    x, y = FragmentSampler(tokens, 20, seed=0, doc_start_token=999).batch(512, 0)
    window = torch.cat([x, y[:, -1:]], dim=1)
    # A window may hold a marker only at its first position.
    assert not (window[:, 1:] == 999).any()


def test_doc_short_documents_start_at_marker():
    tokens = documents([5, 6, 4, 7, 5, 3])
    x, _ = FragmentSampler(tokens, 10, seed=0, doc_start_token=999).batch(256, 0)
    assert bool((x[:, 0] == 999).all())


def test_doc_window_moved_to_document_end():
    tokens = np.arange(1002, dtype=np.uint16)
    tokens[[0, 501]] = 9999
    _, y = FragmentSampler(tokens, 20, seed=0, doc_start_token=9999).batch(4096, 0)
    # Windows that would reach the marker at 501 end at 500, the last token of the first document.
    assert bool((y[:, -1] == 500).sum() > 40)


def test_records_sample_whole_rows():
    rows = np.array([[i, 100, i + 1, 101, i + 2] for i in range(50)])
    x, y = FragmentSampler(rows, 4, seed=0).batch(32, 0)
    assert torch.equal(y[:, -1], x[:, 0] + 2)


def test_records_shapes():
    rows = np.array([[i, 100, i + 1, 101, i + 2] for i in range(50)])
    x, y = FragmentSampler(rows, 4, seed=0).batch(32, 0)
    assert (tuple(x.shape), tuple(y.shape)) == ((32, 4), (32, 4))


def test_eval_batches_reproducible():
    first = eval_batches(TOKENS, 3, 4, 16, seed=9)
    second = eval_batches(TOKENS, 3, 4, 16, seed=9)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(first, second))


def test_eval_batches_count():
    assert len(eval_batches(TOKENS, 5, 4, 16, seed=9)) == 5


def test_batch_vectorised_speed():
    import time

    sampler = FragmentSampler(np.zeros(5_000_000, dtype=np.uint16), 1024, seed=0)
    sampler.batch(64, 0)
    start = time.perf_counter()
    for iteration in range(20):
        sampler.batch(64, iteration)
    tokens_per_second = 20 * 64 * 1024 / (time.perf_counter() - start)
    # A loose floor (the benchmark target is 20 M tokens/s), so a per-token Python loop fails.
    assert tokens_per_second > 5e6


def test_known_doc_starts_give_the_scanned_batches():
    tokens = np.arange(5_000, dtype=np.uint16) % 500
    scanned = FragmentSampler(tokens, 40, seed=3, doc_start_token=0)
    known = FragmentSampler(tokens, 40, seed=3, doc_start_token=0, doc_starts=np.arange(0, 5_000, 500))
    for iteration in range(5):
        assert torch.equal(scanned.batch(16, iteration)[0], known.batch(16, iteration)[0])


def test_known_doc_starts_are_not_rescanned():
    # Token 0 also occurs at 300, inside a document; only the listed starts count.
    tokens = np.ones(1_000, dtype=np.uint16)
    tokens[[0, 300, 500]] = 0
    sampler = FragmentSampler(tokens, 10, seed=3, doc_start_token=0, doc_starts=np.array([0, 500]))
    assert sampler.doc_starts.tolist() == [0, 500]
