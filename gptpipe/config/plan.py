"""The plan: a parsed script checked as a whole against the config before any work."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from gptpipe.config.dims import CODECS, CompactDims

# Config sub-tree that can override single fields of each compact string
# (`model.depth=8` beats the `d` of MODEL_DIMS).
SUBTREES = {"MODEL_DIMS": "model", "TRAIN_CONFIG": "train", "DROP_CONFIG": "drop"}


def decode_dims(variable: str, values: dict[str, Any], config: DictConfig | None) -> CompactDims:
    """Decode a compact-string variable, then apply field overrides from its config sub-tree."""
    codec = CODECS[variable]
    dims = codec.decode(values[variable])
    if config is not None:
        subtree = config.get(SUBTREES[variable])
        if subtree:
            changes = {key: value for key, value in subtree.items() if value is not None}
            if changes:
                dims = dims.replace(**changes)
    return dims
