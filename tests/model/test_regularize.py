"""Token dropout and channel masks."""

from __future__ import annotations

import math

import pytest
import torch

from gptpipe.model import drop_tokens, sample_channel_mask

UNKNOWN = 99


def test_drop_tokens_rate():
    idx = torch.zeros(200, 500, dtype=torch.int64)
    dropped = drop_tokens(idx, 0.7, UNKNOWN, torch.Generator().manual_seed(0))
    replaced = (dropped == UNKNOWN).float().mean().item()
    # 5 standard deviations of a binomial fraction over 100k draws
    tolerance = 5 * math.sqrt(0.3 * 0.7 / idx.numel())
    assert abs(replaced - 0.3) < tolerance


def test_drop_tokens_keeps_values():
    idx = torch.arange(1000).reshape(10, 100)
    dropped = drop_tokens(idx, 0.5, UNKNOWN, torch.Generator().manual_seed(0))
    kept = dropped != UNKNOWN
    assert torch.equal(dropped[kept], idx[kept])


def test_drop_tokens_leaves_input_untouched():
    idx = torch.arange(1000).reshape(10, 100)
    original = idx.clone()
    drop_tokens(idx, 0.5, UNKNOWN, torch.Generator().manual_seed(0))
    assert torch.equal(idx, original)


def test_drop_tokens_keep_one_is_identity():
    idx = torch.arange(100).reshape(4, 25)
    assert torch.equal(drop_tokens(idx, 1.0, UNKNOWN, torch.Generator()), idx)


def test_drop_tokens_deterministic():
    idx = torch.zeros(8, 64, dtype=torch.int64)
    first = drop_tokens(idx, 0.5, UNKNOWN, torch.Generator().manual_seed(7))
    second = drop_tokens(idx, 0.5, UNKNOWN, torch.Generator().manual_seed(7))
    assert torch.equal(first, second)


def test_channel_mask_keep_one_is_none():
    assert sample_channel_mask(128, 1.0, torch.Generator(), "cpu") is None


def test_channel_mask_values():
    mask = sample_channel_mask(4096, 0.8, torch.Generator().manual_seed(0), "cpu")
    assert set(mask.unique().tolist()) == {0.0, 1 / 0.8}


def test_channel_mask_rate():
    mask = sample_channel_mask(100_000, 0.8, torch.Generator().manual_seed(0), "cpu")
    kept = (mask > 0).float().mean().item()
    assert abs(kept - 0.8) < 5 * math.sqrt(0.8 * 0.2 / 100_000)


def test_channel_mask_shape():
    assert sample_channel_mask(256, 0.5, torch.Generator().manual_seed(0), "cpu").shape == (256,)


@pytest.mark.parametrize("keep", [0.0, 1.5])
def test_keep_out_of_range(keep):
    with pytest.raises(ValueError, match="keep fraction"):
        sample_channel_mask(128, keep, torch.Generator(), "cpu")
