"""Compact strings: decoding, canonical encoding, round trips and every error."""

from __future__ import annotations

import pytest

from gptpipe.config.dims import DropConfig, ModelDims, TrainConfig
from gptpipe.errors import ConfigError


@pytest.mark.parametrize(
    "codec, text, expected",
    [
        (ModelDims, "e512h2d36w1024", dict(width=512, heads=2, depth=36, window=1024, ffn_mult=1)),
        (ModelDims, "relu4e128h1d4", dict(width=128, heads=1, depth=4, window=64, ffn_mult=4)),
        (ModelDims, "d8", dict(width=256, heads=1, depth=8, window=64, ffn_mult=1)),
        (ModelDims, "", dict(width=256, heads=1, depth=36, window=64, ffn_mult=1)),
        (TrainConfig, "b64f256", dict(batch=64, fragment_len=256)),
        (TrainConfig, "f1024b16", dict(batch=16, fragment_len=1024)),
        (DropConfig, "drop0.9ch1lr0.01slow500tail5",
         dict(keep_tokens=0.9, keep_channels=1.0, lr=0.01, warmup=500, reg=0.0, tail=5.0)),
        (DropConfig, "lr1e-3reg0.1", dict(keep_tokens=1.0, keep_channels=1.0, lr=0.001, warmup=1000, reg=0.1,
                                          tail=0.0)),
        (DropConfig, "ch.5", dict(keep_tokens=1.0, keep_channels=0.5, lr=0.01, warmup=1000, reg=0.0, tail=0.0)),
    ],
)
def test_decode(codec, text, expected):
    assert codec.decode(text).as_dict() == expected


@pytest.mark.parametrize(
    "codec, text, canonical",
    [
        (ModelDims, "e512h2d36w1024", "e512h2d36w1024relu1"),
        (ModelDims, "relu4e128h1d4", "e128h1d4w64relu4"),
        (TrainConfig, "f256b64", "b64f256"),
        (DropConfig, "drop0.9ch1lr0.01slow500tail5", "drop0.9ch1lr0.01slow500reg0tail5"),
        (DropConfig, "lr1e-3", "drop1ch1lr0.001slow1000reg0tail0"),
    ],
)
def test_encode_canonical(codec, text, canonical):
    assert codec.decode(text).encode() == canonical


@pytest.mark.parametrize(
    "codec, text",
    [
        (ModelDims, "e768h6d12w1024relu4"),
        (ModelDims, "h3e384d2"),
        (TrainConfig, "b1f1"),
        (DropConfig, "drop0.25ch0.75lr0.003slow0reg0.5tail1"),
        (DropConfig, "lr1e-05"),
    ],
)
def test_round_trip(codec, text):
    decoded = codec.decode(text)
    assert codec.decode(decoded.encode()) == decoded


@pytest.mark.parametrize(
    "codec, text, message",
    [
        (TrainConfig, "b16x5", "unknown key 'x'; valid keys are b (fragments per batch), f (tokens per fragment)"),
        (TrainConfig, "b16b32", "key 'b' is given twice"),
        (TrainConfig, "b64f", "key 'f' (tokens per fragment) needs a number right after it"),
        (TrainConfig, "b1.5", "needs a whole number, got 1.5"),
        (TrainConfig, "b0", "b=0 is out of range"),
        (ModelDims, "e500", "width e500 is not a multiple of 128; use e384 or e512"),
        (ModelDims, "e100", "out of range"),
        (ModelDims, "d3", "depth d3 is odd"),
        (ModelDims, "d7", "use d6 or d8"),
        (ModelDims, "e128 d4", "unexpected ' ' at character 5"),
        (ModelDims, "ee128", "unknown key 'ee'"),
        (DropConfig, "drop0", "drop=0 is out of range"),
        (DropConfig, "drop1.5", "drop=1.5 is out of range"),
        (DropConfig, "ch0", "ch=0 is out of range"),
        (DropConfig, "tail0.5", "tail0.5 must be 0 (no decay) or >= 1"),
        (DropConfig, "lr0", "lr=0 is out of range"),
        (DropConfig, "slow-5", "slow=-5 is out of range"),
        (TrainConfig, "b16ww1024", "write the fragment length as `f` here (e.g. f1024) and the attention window "
                                   "as `w` in MODEL_DIMS (e.g. w1024)"),
        (ModelDims, "e512tt128d39", "key 'tt' no longer exists"),
    ],
)
def test_decode_errors(codec, text, message):
    with pytest.raises(ConfigError) as caught:
        codec.decode(text)
    assert message in caught.value.message
    assert f"'{text}'" in caught.value.message


def test_retired_tt_mentions_even_depth():
    with pytest.raises(ConfigError) as caught:
        ModelDims.decode("e512tt128d39")
    assert "depth `d` even" in caught.value.message


def test_unknown_key_suggests_close_key():
    with pytest.raises(ConfigError) as caught:
        DropConfig.decode("dorp0.9")
    assert "did you mean 'drop'?" in caught.value.message


def test_replace_validates():
    with pytest.raises(ConfigError):
        ModelDims.decode("e256d4").replace(depth=5)


def test_model_dims_derived_sizes():
    dims = ModelDims.decode("e512h2d4w1024relu3")
    assert dims.attention_width == 256
    assert dims.ffn_width == 768
    assert dims.local_window == 64
    assert ModelDims.decode("w32").local_window == 32
