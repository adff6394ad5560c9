"""Tokenizers and gptpipe's special tokens.

Special-token rule: every vocabulary gets two tokens of gptpipe's own right after its base
vocabulary of V tokens. Id V is `<?>`, the token that token dropout puts in place of dropped
input tokens. Id V + 1 is the fragment-start token, which precedes every text document. For
token-id data, `set_vocab_size(N, K)` makes V = N and the model embeds N + K tokens (K >= 2).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from gptpipe.errors import DataError

SPECIAL_TOKEN_COUNT = 2
UNKNOWN_TEXT = "<?>"
FRAGMENT_START_TEXT = "<fragment>"


class Tokenizer:
    """Text to token ids and back, over a base vocabulary plus gptpipe's two special tokens."""

    name: str = "tokenizer"
    token_unit: str | None = None
    """"byte" or "char" when one base token is exactly one byte or one character, else None."""

    def __init__(self, base_vocab_size: int):
        self.base_vocab_size = base_vocab_size

    @property
    def unknown_token(self) -> int:
        return self.base_vocab_size

    @property
    def fragment_start_token(self) -> int:
        return self.base_vocab_size + 1

    @property
    def vocab_size(self) -> int:
        """Tokens the model embeds: the base vocabulary and the special tokens."""
        return self.base_vocab_size + SPECIAL_TOKEN_COUNT

    def encode(self, text: str) -> list[int]:
        return self.encode_array(text).tolist()

    def encode_array(self, text: str) -> np.ndarray:
        raise NotImplementedError

    def encode_batch(self, texts: list[str]) -> list[np.ndarray]:
        return [self.encode_array(text) for text in texts]

    def decode(self, ids: list[int]) -> str:
        raise NotImplementedError

    def to_metadata(self) -> dict[str, Any]:
        raise NotImplementedError

    def _special_text(self, token: int) -> str:
        if token == self.unknown_token:
            return UNKNOWN_TEXT
        if token == self.fragment_start_token:
            return FRAGMENT_START_TEXT
        return ""


class ByteTokenizer(Tokenizer):
    """One token per UTF-8 byte: 256 base tokens."""

    name = "byte"
    token_unit = "byte"

    def __init__(self) -> None:
        super().__init__(256)

    def encode_array(self, text: str) -> np.ndarray:
        return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.uint16)

    def decode(self, ids: list[int]) -> str:
        pieces: list[str] = []
        run = bytearray()
        for token in ids:
            if 0 <= token < 256:
                run.append(token)
                continue
            pieces.append(run.decode("utf-8", errors="replace"))
            run.clear()
            pieces.append(self._special_text(token))
        pieces.append(run.decode("utf-8", errors="replace"))
        return "".join(pieces)

    def to_metadata(self) -> dict[str, Any]:
        return {"kind": "byte"}


class CharTokenizer(Tokenizer):
    """One token per character, over the characters of a given text in code-point order.

    Characters outside the vocabulary are encoded as `<?>`.
    """

    name = "char"
    token_unit = "char"

    def __init__(self, characters: str):
        self.characters = "".join(sorted(set(characters)))
        if not self.characters:
            raise DataError("a character vocabulary needs at least one character; the text is empty")
        super().__init__(len(self.characters))
        self._code_points = np.array([ord(c) for c in self.characters], dtype=np.uint32)

    def encode_array(self, text: str) -> np.ndarray:
        # UTF-32 gives one uint32 code point per character, so the lookup stays vectorised.
        code_points = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        positions = np.searchsorted(self._code_points, code_points)
        positions = np.minimum(positions, len(self._code_points) - 1)
        known = self._code_points[positions] == code_points
        return np.where(known, positions, self.unknown_token).astype(np.uint32)

    def decode(self, ids: list[int]) -> str:
        return "".join(
            self.characters[token] if 0 <= token < self.base_vocab_size else self._special_text(token)
            for token in ids
        )

    def to_metadata(self) -> dict[str, Any]:
        return {"kind": "char", "characters": self.characters}


class BpeTokenizer(Tokenizer):
    """A Hugging Face `tokenizers` tokenizer, as saved in a tokenizer.json file."""

    token_unit = None

    name = "bpe"

    def __init__(self, hf_tokenizer: Any):
        self.hf_tokenizer = hf_tokenizer
        super().__init__(hf_tokenizer.get_vocab_size(with_added_tokens=True))

    @classmethod
    def from_file(cls, path: str) -> BpeTokenizer:
        from tokenizers import Tokenizer as HfTokenizer

        try:
            hf_tokenizer = HfTokenizer.from_file(str(path))
        except Exception as error:  # tokenizers raises a plain Exception for malformed files
            raise DataError(
                f"cannot read tokenizer file {path}: {error}; pass a tokenizer.json saved by "
                "Hugging Face tokenizers (Tokenizer.save)"
            ) from None
        return cls(hf_tokenizer)

    def encode_array(self, text: str) -> np.ndarray:
        return np.asarray(self.hf_tokenizer.encode(text, add_special_tokens=False).ids, dtype=np.uint32)

    def encode_batch(self, texts: list[str]) -> list[np.ndarray]:
        # encode_batch_fast (tokenizers 0.20 and later) skips computing character offsets.
        if hasattr(self.hf_tokenizer, "encode_batch_fast"):
            encodings = self.hf_tokenizer.encode_batch_fast(texts, add_special_tokens=False)
        else:
            encodings = self.hf_tokenizer.encode_batch(texts, add_special_tokens=False)
        return [np.asarray(encoding.ids, dtype=np.uint32) for encoding in encodings]

    def decode(self, ids: list[int]) -> str:
        pieces: list[str] = []
        run: list[int] = []
        for token in ids:
            if 0 <= token < self.base_vocab_size:
                run.append(token)
                continue
            pieces.append(self.hf_tokenizer.decode(run))
            run = []
            pieces.append(self._special_text(token))
        pieces.append(self.hf_tokenizer.decode(run))
        return "".join(pieces)

    def to_metadata(self) -> dict[str, Any]:
        return {"kind": "bpe", "tokenizer_json": self.hf_tokenizer.to_str()}


class TokenIdTokenizer(Tokenizer):
    """The vocabulary of data that is already token ids (set_vocab_size), with no text form.

    `decode` writes the ids as numbers; `encode` reads whitespace-separated numbers.
    """

    name = "token ids"
    token_unit = None

    def __init__(self, base_vocab_size: int, extra_tokens: int):
        if extra_tokens < SPECIAL_TOKEN_COUNT:
            raise DataError(
                f"set_vocab_size({base_vocab_size}, {extra_tokens}) leaves no room for gptpipe's "
                f"{SPECIAL_TOKEN_COUNT} special tokens (<?> and fragment start); pass K >= {SPECIAL_TOKEN_COUNT}"
            )
        super().__init__(base_vocab_size)
        self.extra_tokens = extra_tokens

    @property
    def vocab_size(self) -> int:
        return self.base_vocab_size + self.extra_tokens

    def encode_array(self, text: str) -> np.ndarray:
        try:
            return np.array([int(word) for word in text.split()], dtype=np.uint32)
        except ValueError:
            raise DataError(
                f"token-id data has no text tokenizer, so encode() reads only numbers, got {text[:40]!r}; "
                "call load_tokenizer(path) to encode text"
            ) from None

    def decode(self, ids: list[int]) -> str:
        return " ".join(str(token) for token in ids)

    def to_metadata(self) -> dict[str, Any]:
        return {"kind": "token_ids", "base_vocab_size": self.base_vocab_size, "extra_tokens": self.extra_tokens}


def tokenizer_from_metadata(metadata: dict[str, Any]) -> Tokenizer:
    """Rebuild a tokenizer from the dict its `to_metadata()` returned (for example from a checkpoint)."""
    kind = metadata.get("kind")
    if kind == "byte":
        return ByteTokenizer()
    if kind == "char":
        return CharTokenizer(metadata["characters"])
    if kind == "bpe":
        from tokenizers import Tokenizer as HfTokenizer

        return BpeTokenizer(HfTokenizer.from_str(metadata["tokenizer_json"]))
    if kind == "token_ids":
        return TokenIdTokenizer(metadata["base_vocab_size"], metadata["extra_tokens"])
    if kind == "binary_op":
        from gptpipe.data.binary_op import BinaryOpTokenizer

        return BinaryOpTokenizer(metadata["modulus"])
    raise DataError(f"unknown tokenizer kind {kind!r} in metadata; it was not written by this gptpipe version")


def same_tokenizer(first: Tokenizer, second: Tokenizer) -> bool:
    return json.dumps(first.to_metadata(), sort_keys=True) == json.dumps(second.to_metadata(), sort_keys=True)

