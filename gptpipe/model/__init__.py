"""The GPT model, its MPF_* flags, simulated quantisation and dropout helpers."""

from gptpipe.model.flags import MODEL_FLAGS, validate_flags
from gptpipe.model.gpt import GPT, parameter_counts
from gptpipe.model.regularize import drop_tokens, sample_channel_mask

__all__ = ["GPT", "MODEL_FLAGS", "drop_tokens", "parameter_counts", "sample_channel_mask", "validate_flags"]
