"""Data: tokenizers, data sources, the fragment sampler and synthetic datasets.

The trainer calls `streams_for(state)` once, then samples with `FragmentSampler` and
`eval_batches`. The script operations are in `gptpipe.data.ops`.
"""

from gptpipe.data.pipeline import DataPipeline, TokenStreams, streams_for
from gptpipe.data.sampler import FragmentSampler, eval_batches
from gptpipe.data.tokenizer import Tokenizer, tokenizer_from_metadata

__all__ = [
    "DataPipeline",
    "FragmentSampler",
    "TokenStreams",
    "Tokenizer",
    "eval_batches",
    "streams_for",
    "tokenizer_from_metadata",
]
