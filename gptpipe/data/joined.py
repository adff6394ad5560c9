"""A read-only token stream made of several arrays one after another, without copying them.

The train and test streams of a script with several data sources are joined this way, so each
source may be a memory-mapped corpus larger than RAM. The stream supports what the samplers and
the fingerprint need: `len`, `shape`, slices with step 1, integer indices and integer arrays.
Every read returns a new NumPy array in the stream's dtype.
"""

from __future__ import annotations

import numpy as np


class JoinedTokens:
    """A read-only view of the 1-D arrays `parts` as one stream of dtype `dtype`."""

    ndim = 1

    def __init__(self, parts: list[np.ndarray], dtype: type | np.dtype):
        if not parts:
            raise ValueError("JoinedTokens needs at least one part")
        for part in parts:
            if part.ndim != 1:
                raise ValueError(f"JoinedTokens parts must be 1-D, got shape {part.shape}")
        self.parts = parts
        self.dtype = np.dtype(dtype)
        lengths = np.array([len(part) for part in parts], dtype=np.int64)
        self.offsets = np.concatenate(([0], np.cumsum(lengths)))
        """Start of each part in the stream (offsets[i] for part i), then the stream's length."""

    def __len__(self) -> int:
        return int(self.offsets[-1])

    @property
    def shape(self) -> tuple[int]:
        return (len(self),)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        joined = np.concatenate([np.asarray(part, dtype=self.dtype) for part in self.parts])
        return joined if dtype is None else joined.astype(dtype)

    def __getitem__(self, key):
        if isinstance(key, slice):
            return self._range(key)
        if isinstance(key, (int, np.integer)):
            return self._gather(np.asarray(key))[()]
        indices = np.asarray(key)
        if indices.dtype.kind not in "iu":
            raise TypeError(f"JoinedTokens indices must be integers or slices, got {indices.dtype}")
        return self._gather(indices)

    def _range(self, key: slice) -> np.ndarray:
        start, stop, step = key.indices(len(self))
        if step != 1:
            raise ValueError("JoinedTokens slices must have step 1")
        pieces = []
        for index, part in enumerate(self.parts):
            begin, end = self.offsets[index], self.offsets[index + 1]
            low, high = max(start, begin), min(stop, end)
            if low < high:
                pieces.append(np.asarray(part[low - begin:high - begin], dtype=self.dtype))
        return np.concatenate(pieces) if pieces else np.zeros(0, dtype=self.dtype)

    def _gather(self, indices: np.ndarray) -> np.ndarray:
        length = len(self)
        indices = np.where(indices < 0, indices + length, indices)
        if indices.size and (indices.min() < 0 or indices.max() >= length):
            raise IndexError(f"index out of range for a stream of {length} tokens")
        part_of = np.searchsorted(self.offsets, indices, side="right") - 1
        out = np.empty(indices.shape, dtype=self.dtype)
        for index, part in enumerate(self.parts):
            chosen = part_of == index
            if chosen.any():
                out[chosen] = part[indices[chosen] - self.offsets[index]]
        return out
