"""Modular arithmetic equations `a op b = c (mod p)`, the data for MPF_GROK_BINARY_OP.

Tokens: ids 0 .. p-1 are the residues, then one id per operator (+ - * /) and one for '='.
Each equation is the row [a, op, b, =, c], so a batch has x = [a, op, b, =] and y[:, -1] = c.
Division is multiplication by the modular inverse of b, over b != 0, and needs a prime modulus.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gptpipe.data.tokenizer import Tokenizer
from gptpipe.errors import DataError

OPERATORS = ("+", "-", "*", "/")
SPLIT_SEED = 1
"""Seed of the train/test shuffle, so every host and run splits the equations the same way."""


class BinaryOpTokenizer(Tokenizer):
    """Residues 0 .. p-1 as numbers, the four operators and '=', separated by spaces in text."""

    token_unit = None

    def __init__(self, modulus: int):
        self.modulus = modulus
        self.symbols = [str(residue) for residue in range(modulus)] + list(OPERATORS) + ["="]
        self._ids = {symbol: index for index, symbol in enumerate(self.symbols)}
        self.name = f"mod {modulus} arithmetic"
        super().__init__(len(self.symbols))

    def operator_token(self, operator: str) -> int:
        return self._ids[operator]

    @property
    def equals_token(self) -> int:
        return self._ids["="]

    def encode_array(self, text: str) -> np.ndarray:
        spaced = text.replace("=", " = ")
        for operator in OPERATORS:
            spaced = spaced.replace(operator, f" {operator} ")
        try:
            return np.array([self._ids[word] for word in spaced.split()], dtype=np.uint32)
        except KeyError as error:
            raise DataError(
                f"{error.args[0]!r} is not a token of mod {self.modulus} arithmetic; use residues "
                f"0..{self.modulus - 1}, the operators {' '.join(OPERATORS)} and '='"
            ) from None

    def decode(self, ids: list[int]) -> str:
        return " ".join(self.symbols[t] if 0 <= t < self.base_vocab_size else self._special_text(t) for t in ids)

    def to_metadata(self) -> dict[str, Any]:
        return {"kind": "binary_op", "modulus": self.modulus}


def check_binary_op(modulus: int, operator: str, train_fraction: float) -> None:
    """Raise DataError for arguments make_binary_op_dataset cannot use."""
    if operator not in OPERATORS:
        raise DataError(f"unknown operator {operator!r}; use one of {', '.join(repr(o) for o in OPERATORS)}")
    if modulus < 2:
        raise DataError(f"modulus must be at least 2, got {modulus}")
    if operator == "/" and not _is_prime(modulus):
        raise DataError(
            f"division needs a prime modulus so every b != 0 has an inverse, but {modulus} is not prime; "
            "use a prime such as 97"
        )
    if not 0.0 < train_fraction < 1.0:
        raise DataError(f"train_fraction must be between 0 and 1 (exclusive), got {train_fraction}")


def binary_op_equations(modulus: int, operator: str) -> np.ndarray:
    """Return every equation as an (N, 5) int64 array of rows [a, op, b, =, c]."""
    a, b = np.meshgrid(np.arange(modulus, dtype=np.int64), np.arange(modulus, dtype=np.int64), indexing="ij")
    a, b = a.ravel(), b.ravel()
    if operator == "+":
        c = (a + b) % modulus
    elif operator == "-":
        c = (a - b) % modulus
    elif operator == "*":
        c = (a * b) % modulus
    else:
        a, b = a[b != 0], b[b != 0]
        inverses = np.array([0] + [pow(int(v), -1, modulus) for v in range(1, modulus)], dtype=np.int64)
        c = (a * inverses[b]) % modulus
    tokenizer = BinaryOpTokenizer(modulus)
    operator_column = np.full_like(a, tokenizer.operator_token(operator))
    equals_column = np.full_like(a, tokenizer.equals_token)
    return np.stack([a, operator_column, b, equals_column, c], axis=1)  # (N, 5)


def split_equations(equations: np.ndarray, train_fraction: float, seed: int = SPLIT_SEED
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Shuffle the rows with `seed` and return (train, test), train holding round(N * train_fraction) rows."""
    order = np.random.default_rng(seed).permutation(len(equations))
    train_count = int(round(len(equations) * train_fraction))
    return equations[np.sort(order[:train_count])], equations[np.sort(order[train_count:])]


def _is_prime(number: int) -> bool:
    if number < 2:
        return False
    return all(number % divisor for divisor in range(2, int(number ** 0.5) + 1))
