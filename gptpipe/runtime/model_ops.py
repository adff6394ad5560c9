"""Script operations that build a model: create_model()."""

from __future__ import annotations

import logging

import torch

from gptpipe.model import GPT, MODEL_FLAGS, parameter_counts, validate_flags
from gptpipe.runtime.registry import Flag, operation
from gptpipe.runtime.state import PlanContext, RunState

log = logging.getLogger("gptpipe")


def _check_create_model(context: PlanContext, *flags: str) -> None:
    validate_flags(flags)


@operation(creates_model=True, flags=tuple(MODEL_FLAGS), check=_check_create_model)
def create_model(state: RunState, *flags: Flag) -> None:
    """Build a new GPT from MODEL_DIMS with the given MPF_* flags, its vocabulary taken from the data.

    Example: `create_model(MPF_TAIL_LOSS)`. The weights are initialised from the `seed` setting, so
    two runs with the same seed start from the same model. Training that follows starts at
    iteration 0 with a fresh optimizer.
    """
    from gptpipe.data import streams_for

    streams = streams_for(state)
    dims = state.model_dims()
    fragment_len = state.train_config().fragment_len
    torch.manual_seed(int(state.config.get("seed", 1337)))
    model = GPT(dims, streams.vocab_size, flags=tuple(flags), max_len=fragment_len)
    total, without_embeddings = parameter_counts(model)
    state.model = model
    state.model_flags = tuple(str(flag) for flag in flags)
    state.optimizer = None
    state.resume = None
    state.iteration = 0
    state.model_origin = None
    if state.is_rank_zero:
        log.info(
            "model %s, flags %s, vocabulary %d: %s parameters (%s without embeddings)",
            dims.encode(), ", ".join(state.model_flags) or "none", streams.vocab_size,
            f"{total:,}", f"{without_embeddings:,}",
        )
