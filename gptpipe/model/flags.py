"""MPF_* model flags: names, one-line descriptions and validation."""

from __future__ import annotations

from collections.abc import Iterable

from gptpipe.errors import ConfigError

TAIL_LOSS = "MPF_TAIL_LOSS"
GROK_BINARY_OP = "MPF_GROK_BINARY_OP"
SIM_QUANT_2BIT = "MPF_SIM_QUANT_2BIT"
SIM_QUANT_4BIT = "MPF_SIM_QUANT_4BIT"
ABS_POSITIONS = "MPF_ABS_POSITIONS"

MODEL_FLAGS: dict[str, str] = {
    TAIL_LOSS: "loss over the second half of each fragment only (positions T//2 .. T-1)",
    GROK_BINARY_OP: "loss and accuracy on the last position of each fragment only (binary-operation tasks)",
    SIM_QUANT_2BIT: "simulate 2-bit block weights: 4 levels per group of 128 inputs, full-precision master weights",
    SIM_QUANT_4BIT: "simulate 4-bit block weights: 16 levels per group of 128 inputs, full-precision master weights",
    ABS_POSITIONS: "learned absolute position embeddings instead of rotary position encoding",
}
"""Flag name -> one-line description, in the order the script reference lists them."""


def validate_flags(flags: Iterable[str]) -> frozenset[str]:
    """Return `flags` as a set; raise ConfigError on an unknown flag or the two quantisation flags together."""
    if isinstance(flags, str):
        flags = [flags]
    chosen = frozenset(flags)
    unknown = sorted(chosen - MODEL_FLAGS.keys())
    if unknown:
        raise ConfigError(
            f"unknown model flag {', '.join(repr(name) for name in unknown)}; "
            f"known flags are {', '.join(MODEL_FLAGS)}"
        )
    if SIM_QUANT_2BIT in chosen and SIM_QUANT_4BIT in chosen:
        raise ConfigError(
            f"model flags {SIM_QUANT_2BIT} and {SIM_QUANT_4BIT} are mutually exclusive; pass at most one of them"
        )
    return chosen


def quantization_bits(flags: frozenset[str]) -> int | None:
    """Return the simulated weight precision the flags select (2 or 4 bits), or None for full precision."""
    if SIM_QUANT_2BIT in flags:
        return 2
    if SIM_QUANT_4BIT in flags:
        return 4
    return None
