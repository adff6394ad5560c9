"""Fragment sampling: random training batches and the fixed evaluation batches.

Document rule (when a doc start token is given): a fragment of f + 1 tokens (x and its shifted
targets y) never crosses into the next document, unless it starts at a document start. A random
start position whose window would reach the next document start is moved back so that the
window ends right before it, but never before the start of its own document. So a document
shorter than f + 1 tokens is read from its start and the fragment runs on into the next one.
"""

from __future__ import annotations

import numpy as np
import torch

from gptpipe.errors import DataError

DOC_SCAN_CHUNK = 1 << 24


class FragmentSampler:
    """Draw batches of token fragments, deterministic given (seed, iteration).

    For 1-D token arrays, each row is f + 1 consecutive tokens: x the first f, y the last f.
    For 2-D record arrays (N, L), each row is one whole record: x its first L - 1 tokens, y the
    last L - 1, and `fragment_len` is not used.
    """

    def __init__(self, tokens: np.ndarray, fragment_len: int, seed: int, doc_start_token: int | None = None,
                 *, split: str = "train", doc_starts: np.ndarray | None = None):
        if fragment_len < 1:
            raise DataError(f"fragment length must be at least 1 token, got {fragment_len}")
        self.tokens = tokens
        self.fragment_len = fragment_len
        self.seed = seed
        self.records = tokens.ndim == 2
        if self.records:
            if len(tokens) == 0:
                raise DataError(f"the {split} set contains no records; change the dataset's train fraction")
            self.doc_starts = None
            return
        if len(tokens) < fragment_len + 1:
            raise DataError(
                f"fragment length {fragment_len} (f in TRAIN_CONFIG) needs at least {fragment_len + 1} tokens, "
                f"but the {split} set has {len(tokens)}; lower f in TRAIN_CONFIG"
                + (" or raise TEST_FRACTION" if split == "test" else " or load more data")
            )
        if doc_start_token is None:
            self.doc_starts = None
        elif doc_starts is not None:
            # Known positions (TokenStreams keeps them) spare a full read of a memory-mapped corpus.
            self.doc_starts = np.asarray(doc_starts, dtype=np.int64)
        else:
            self.doc_starts = find_doc_starts(tokens, doc_start_token)
        self._window = np.arange(fragment_len + 1, dtype=np.int64)

    def batch(self, batch_size: int, iteration: int, rank: int = 0, world_size: int = 1
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw the global batch of `batch_size` rows and return this rank's (x, y), int64 tensors."""
        if batch_size % world_size:
            raise DataError(
                f"batch size {batch_size} (b in TRAIN_CONFIG) does not divide evenly over {world_size} "
                f"devices; make b a multiple of {world_size}"
            )
        generator = np.random.default_rng([self.seed, iteration])
        per_rank = batch_size // world_size
        rows = slice(rank * per_rank, (rank + 1) * per_rank)
        if self.records:
            chosen = generator.integers(0, len(self.tokens), size=batch_size)[rows]
            block = self.tokens[chosen]  # (B, L)
        else:
            starts = self._starts(generator, batch_size)[rows]
            block = self.tokens[starts[:, None] + self._window]  # (B, f + 1)
        block = torch.from_numpy(np.asarray(block, dtype=np.int64))
        return block[:, :-1], block[:, 1:]

    def _starts(self, generator: np.random.Generator, count: int) -> np.ndarray:
        last_start = len(self.tokens) - self.fragment_len - 1
        starts = generator.integers(0, last_start + 1, size=count, dtype=np.int64)
        if self.doc_starts is None or len(self.doc_starts) == 0:
            return starts
        # Move a window that would reach the next document back to end before it.
        doc_starts = self.doc_starts
        next_index = np.searchsorted(doc_starts, starts, side="right")
        has_next = next_index < len(doc_starts)
        next_start = doc_starts[np.minimum(next_index, len(doc_starts) - 1)]
        crosses = has_next & (starts + self.fragment_len + 1 > next_start)
        own_start = np.where(next_index > 0, doc_starts[np.maximum(next_index - 1, 0)], 0)
        moved = np.maximum(next_start - self.fragment_len - 1, own_start)
        return np.where(crosses, moved, starts)


def find_doc_starts(tokens: np.ndarray, doc_start_token: int) -> np.ndarray:
    """Return the positions of `doc_start_token` in `tokens` (int64), scanning in chunks."""
    found = []
    for offset in range(0, len(tokens), DOC_SCAN_CHUNK):
        chunk = np.asarray(tokens[offset:offset + DOC_SCAN_CHUNK])
        found.append(np.flatnonzero(chunk == doc_start_token) + offset)
    return np.concatenate(found).astype(np.int64) if found else np.zeros(0, dtype=np.int64)


def eval_batches(tokens: np.ndarray, count: int, batch_size: int, fragment_len: int, seed: int,
                 doc_start_token: int | None = None, rank: int = 0, world_size: int = 1,
                 split: str = "test", doc_starts: np.ndarray | None = None
                 ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Draw `count` batches once, to be reused at every evaluation (iterations 0 .. count-1 of `seed`)."""
    sampler = FragmentSampler(tokens, fragment_len, seed, doc_start_token, split=split, doc_starts=doc_starts)
    return [sampler.batch(batch_size, index, rank, world_size) for index in range(count)]
