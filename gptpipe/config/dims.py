"""Compact strings MODEL_DIMS, TRAIN_CONFIG and DROP_CONFIG: typed values, decoders, encoders.

A compact string is a run of `key number` pairs in any order, each key at most once, e.g.
`e512h2d36w1024`. Decoding gives a frozen dataclass; `encode` writes the canonical string
(every key, fixed order), so decode -> encode -> decode is the identity.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from dataclasses import dataclass, fields
from typing import Any, ClassVar

from gptpipe.errors import ConfigError

HEAD_DIM = 128
"""Width of one attention head; MODEL_DIMS `e` is a multiple of it."""

LOCAL_WINDOW = 64
"""Blocks alternate between a local window of min(LOCAL_WINDOW, w) tokens and the full w."""


@dataclass(frozen=True)
class Key:
    """One key of a compact string: the dataclass field it sets and what it accepts."""

    key: str
    field: str
    kind: type
    description: str
    minimum: float | None = None
    maximum: float | None = None
    min_exclusive: bool = False


def _number(text: str, kind: type) -> Any:
    if kind is int:
        value = float(text)
        if not value.is_integer():
            raise ValueError(text)
        return int(value)
    return float(text)


def _format(value: Any) -> str:
    if isinstance(value, int):
        return str(value)
    text = repr(float(value))
    if text.endswith(".0"):
        text = text[:-2]
    return text


class CompactDims:
    """Base of the three compact-string dataclasses: decode and encode from `KEYS`."""

    VARIABLE: ClassVar[str]
    KEYS: ClassVar[tuple[Key, ...]]
    # Keys from older documentation and what to write instead.
    RETIRED: ClassVar[dict[str, str]] = {}

    @classmethod
    def decode(cls, text: str) -> CompactDims:
        """Parse `text`, or raise a ConfigError that quotes it and names the fix."""
        if not isinstance(text, str):
            raise ConfigError(f"{cls.VARIABLE} must be a string such as '{cls().encode()}', got {text!r}")
        stripped = text.strip()
        by_key = {k.key: k for k in cls.KEYS}
        # Every key is a run of letters and every value starts with a digit, sign or dot, so a
        # letter run is exactly one key. Exponents are read only for decimal keys: in
        # MODEL_DIMS `e` is a key, and `relu4e128` means relu=4, e=128.
        key_pattern = re.compile(r"[a-zA-Z]+")
        int_pattern = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)")
        float_pattern = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
        values: dict[str, Any] = {}
        seen: set[str] = set()
        pos = 0
        while pos < len(stripped):
            match = key_pattern.match(stripped, pos)
            if match is None:
                raise ConfigError(
                    f"invalid {cls.VARIABLE} '{text}': unexpected '{stripped[pos]}' at character {pos + 1}; "
                    f"expected a key ({cls.key_list()}) followed by a number"
                )
            key = match.group()
            pos = match.end()
            spec_for_number = by_key.get(key)
            number_pattern = float_pattern if spec_for_number and spec_for_number.kind is float else int_pattern
            num_match = number_pattern.match(stripped, pos)
            num = num_match.group() if num_match else None
            if num_match:
                pos = num_match.end()
            if key in cls.RETIRED:
                raise ConfigError(f"invalid {cls.VARIABLE} '{text}': key '{key}' {cls.RETIRED[key]}")
            if key not in by_key:
                raise ConfigError(
                    f"invalid {cls.VARIABLE} '{text}': unknown key '{key}'; valid keys are {cls.key_list()}"
                    + cls._suggest(key, by_key)
                )
            if key in seen:
                raise ConfigError(f"invalid {cls.VARIABLE} '{text}': key '{key}' is given twice; give each key once")
            seen.add(key)
            spec = by_key[key]
            if num is None:
                raise ConfigError(
                    f"invalid {cls.VARIABLE} '{text}': key '{key}' ({spec.description}) needs a number right after it, "
                    f"e.g. '{key}{_format(getattr(cls(), spec.field))}'"
                )
            try:
                value = _number(num, spec.kind)
            except ValueError:
                raise ConfigError(
                    f"invalid {cls.VARIABLE} '{text}': key '{key}' ({spec.description}) needs a whole number, got {num}"
                ) from None
            values[spec.field] = value
        return cls.from_fields(values, source=text)

    @classmethod
    def from_fields(cls, values: dict[str, Any], *, source: str | None = None) -> CompactDims:
        """Build from field values (missing fields take defaults) and validate."""
        instance = cls(**values)
        instance.validate(source if source is not None else instance.encode())
        return instance

    def replace(self, **changes: Any) -> CompactDims:
        """Return a validated copy with some fields changed (used for `model.depth=8` overrides)."""
        by_field = {k.field: k for k in self.KEYS}
        for name, value in changes.items():
            spec = by_field[name]
            valid = isinstance(value, (int, float)) and not isinstance(value, bool)
            if valid and spec.kind is int:
                valid = float(value).is_integer()
            if not valid:
                wanted = "a whole number" if spec.kind is int else "a number"
                raise ConfigError(f"{self.VARIABLE} field {name} ({spec.description}) needs {wanted}, got {value!r}")
            changes[name] = spec.kind(value)
        instance = dataclasses.replace(self, **changes)
        instance.validate(instance.encode())
        return instance

    def encode(self) -> str:
        """Return the canonical string: every key, in declaration order."""
        return "".join(f"{k.key}{_format(getattr(self, k.field))}" for k in self.KEYS)

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]

    def validate(self, source: str) -> None:
        for spec in self.KEYS:
            value = getattr(self, spec.field)
            too_low = spec.minimum is not None and (
                value <= spec.minimum if spec.min_exclusive else value < spec.minimum
            )
            too_high = spec.maximum is not None and value > spec.maximum
            if too_low or too_high:
                low = "" if spec.minimum is None else f"{'>' if spec.min_exclusive else '>='} {_format(spec.minimum)}"
                high = "" if spec.maximum is None else f"<= {_format(spec.maximum)}"
                bounds = " and ".join(b for b in (low, high) if b)
                raise ConfigError(
                    f"invalid {self.VARIABLE} '{source}': {spec.key}={_format(value)} is out of range "
                    f"({spec.description}): it must be {bounds}"
                )

    @classmethod
    def key_list(cls) -> str:
        return ", ".join(f"{k.key} ({k.description})" for k in cls.KEYS)

    @classmethod
    def _suggest(cls, key: str, by_key: dict[str, Key]) -> str:
        close = difflib.get_close_matches(key, list(by_key), n=1)
        return f"; did you mean '{close[0]}'?" if close else ""


@dataclass(frozen=True)
class ModelDims(CompactDims):
    """MODEL_DIMS: the transformer's shape."""

    width: int = 256
    """State width `e`, a multiple of 128."""
    heads: int = 1
    """Attention heads `h`, each of dimension 128."""
    depth: int = 36
    """Number of blocks `d`, even (blocks alternate local and full attention windows)."""
    window: int = 64
    """Attention window `w` in tokens."""
    ffn_mult: int = 1
    """`relu`: feed-forward width = relu x h x 128."""

    VARIABLE: ClassVar[str] = "MODEL_DIMS"
    KEYS: ClassVar[tuple[Key, ...]] = (
        Key("e", "width", int, "state width, a multiple of 128", minimum=128),
        Key("h", "heads", int, "attention heads of dimension 128", minimum=1),
        Key("d", "depth", int, "depth in blocks, even", minimum=2),
        Key("w", "window", int, "attention window in tokens", minimum=1),
        Key("relu", "ffn_mult", int, "feed-forward width multiple", minimum=1),
    )
    RETIRED: ClassVar[dict[str, str]] = {
        "tt": "no longer exists (it was a token-type setting in older documentation); remove it, "
        "and keep the depth `d` even",
    }

    def validate(self, source: str) -> None:
        super().validate(source)
        if self.width % HEAD_DIM != 0:
            lower = max(HEAD_DIM, self.width // HEAD_DIM * HEAD_DIM)
            upper = (self.width // HEAD_DIM + 1) * HEAD_DIM
            raise ConfigError(
                f"invalid MODEL_DIMS '{source}': width e{self.width} is not a multiple of {HEAD_DIM}; "
                f"use e{lower} or e{upper}"
            )
        if self.depth % 2 != 0:
            raise ConfigError(
                f"invalid MODEL_DIMS '{source}': depth d{self.depth} is odd; depth must be even because blocks "
                f"alternate local and full attention windows; use d{self.depth - 1} or d{self.depth + 1}"
            )

    @property
    def attention_width(self) -> int:
        """Width of the attention projections: heads x 128, which may differ from `width`."""
        return self.heads * HEAD_DIM

    @property
    def ffn_width(self) -> int:
        return self.ffn_mult * self.heads * HEAD_DIM

    @property
    def local_window(self) -> int:
        return min(LOCAL_WINDOW, self.window)

    def block_parameters(self) -> int:
        """Weights of the transformer blocks, without embeddings, output layer and norms."""
        attention = 4 * self.width * self.attention_width
        ffn = 2 * self.width * self.ffn_width
        return self.depth * (attention + ffn)


@dataclass(frozen=True)
class TrainConfig(CompactDims):
    """TRAIN_CONFIG: the batch."""

    batch: int = 64
    """`b`: fragments per batch (global over all devices)."""
    fragment_len: int = 64
    """`f`: tokens per fragment."""

    VARIABLE: ClassVar[str] = "TRAIN_CONFIG"
    KEYS: ClassVar[tuple[Key, ...]] = (
        Key("b", "batch", int, "fragments per batch", minimum=1),
        Key("f", "fragment_len", int, "tokens per fragment", minimum=1),
    )
    RETIRED: ClassVar[dict[str, str]] = {
        "ww": "was the wide attention window in older documentation; write the fragment length as `f` here "
        "(e.g. f1024) and the attention window as `w` in MODEL_DIMS (e.g. w1024)",
    }

    @property
    def tokens_per_batch(self) -> int:
        return self.batch * self.fragment_len


@dataclass(frozen=True)
class DropConfig(CompactDims):
    """DROP_CONFIG: regularisation and learning-rate schedule."""

    keep_tokens: float = 1.0
    """`drop`: fraction of input tokens kept; the rest are replaced by the `<?>` token."""
    keep_channels: float = 1.0
    """`ch`: fraction of state channels kept, one random set per iteration shared by all blocks."""
    lr: float = 0.01
    """`lr`: peak learning rate."""
    warmup: int = 1000
    """`slow`: iterations of linear learning-rate warm-up."""
    reg: float = 0.0
    """`reg`: decoupled weight decay strength (0: none)."""
    tail: float = 0.0
    """`tail`: the learning rate decays linearly to 0 over the last MAX_ITERS / tail iterations (0: none)."""

    VARIABLE: ClassVar[str] = "DROP_CONFIG"
    KEYS: ClassVar[tuple[Key, ...]] = (
        Key("drop", "keep_tokens", float, "fraction of input tokens kept", minimum=0, maximum=1, min_exclusive=True),
        Key("ch", "keep_channels", float, "fraction of state channels kept", minimum=0, maximum=1, min_exclusive=True),
        Key("lr", "lr", float, "learning rate", minimum=0, min_exclusive=True),
        Key("slow", "warmup", int, "warm-up iterations", minimum=0),
        Key("reg", "reg", float, "weight decay strength", minimum=0),
        Key("tail", "tail", float, "learning-rate decay tail divisor, 0 or >= 1", minimum=0),
    )

    def validate(self, source: str) -> None:
        super().validate(source)
        if 0 < self.tail < 1:
            raise ConfigError(
                f"invalid DROP_CONFIG '{source}': tail{_format(self.tail)} must be 0 (no decay) or >= 1; "
                "the decay covers the last MAX_ITERS / tail iterations"
            )


CODECS: dict[str, type[CompactDims]] = {
    "MODEL_DIMS": ModelDims,
    "TRAIN_CONFIG": TrainConfig,
    "DROP_CONFIG": DropConfig,
}
"""Compact-string variables and their dataclasses."""
