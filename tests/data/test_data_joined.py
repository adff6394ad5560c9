"""JoinedTokens: several token arrays read as one stream without copying them."""

from __future__ import annotations

import numpy as np
import pytest

from gptpipe.data import FragmentSampler
from gptpipe.data.joined import JoinedTokens


@pytest.fixture
def parts():
    return [np.arange(0, 10, dtype=np.uint16), np.arange(10, 13, dtype=np.uint32), np.arange(13, 30, dtype=np.uint16)]


@pytest.fixture
def joined(parts):
    return JoinedTokens(parts, np.uint32)


def test_length_and_shape(joined):
    assert (len(joined), joined.shape, joined.ndim) == (30, (30,), 1)


@pytest.mark.parametrize("begin, end", [(0, 30), (8, 14), (10, 13), (12, 25), (29, 30), (5, 5), (25, 99)])
def test_slices_across_parts(joined, begin, end):
    got = joined[begin:end]
    assert got.dtype == np.uint32
    assert got.tolist() == list(range(begin, min(end, 30)))


def test_integer_arrays_keep_their_shape(joined):
    indices = np.array([[9, 10, 11], [12, 13, 29]])
    assert joined[indices].tolist() == indices.tolist()


def test_single_and_negative_indices(joined):
    assert (int(joined[11]), int(joined[-1])) == (11, 29)


def test_out_of_range_index_rejected(joined):
    with pytest.raises(IndexError, match="30 tokens"):
        joined[np.array([3, 30])]


def test_step_slices_rejected(joined):
    with pytest.raises(ValueError, match="step 1"):
        joined[::2]


def test_asarray_copies_everything(joined):
    assert np.asarray(joined).tolist() == list(range(30))


def test_sampler_matches_copied_stream(parts, joined):
    copied = np.concatenate([part.astype(np.uint32) for part in parts])
    for doc_start_token in (None, 12):
        from_view = FragmentSampler(joined, 6, seed=4, doc_start_token=doc_start_token)
        from_copy = FragmentSampler(copied, 6, seed=4, doc_start_token=doc_start_token)
        for iteration in range(6):
            assert from_view.batch(8, iteration)[0].tolist() == from_copy.batch(8, iteration)[0].tolist()
