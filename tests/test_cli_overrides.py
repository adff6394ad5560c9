"""Command-line checks that run before Hydra: added keys (+name=value), their typos and field names."""

from __future__ import annotations

import pytest

from gptpipe.cli import _check_overrides
from gptpipe.errors import GptpipeError


def test_added_key_typo_rejected():
    with pytest.raises(GptpipeError) as caught:
        _check_overrides(["script=x.txt", "+MAX_ITER=10"])
    assert caught.value.message == "+MAX_ITER adds a new config key, but MAX_ITER looks like a misspelling of MAX_ITERS"
    assert caught.value.hint.startswith("write MAX_ITERS=value")


def test_added_existing_key_rejected():
    with pytest.raises(GptpipeError, match=r"\+seed: seed exists already, so it cannot be added"):
        _check_overrides(["script=x.txt", "+seed=3"])


@pytest.mark.parametrize("override", ["+data_root=/corpora", "++MAX_ITERS=10"])
def test_added_keys_accepted(override):
    _check_overrides(["script=x.txt", override])


def test_field_given_by_string_letter():
    with pytest.raises(GptpipeError) as caught:
        _check_overrides(["script=x.txt", "drop.slow=5"])
    assert caught.value.message == "unknown setting drop.slow; did you mean drop.warmup? (slow in DROP_CONFIG)"
    assert "warmup (slow)" in caught.value.hint
