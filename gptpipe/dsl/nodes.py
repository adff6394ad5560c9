"""Syntax tree of a train script. Every node carries the Location it was written at."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from gptpipe.errors import Location


@dataclass(frozen=True)
class Value:
    """A literal or bare identifier: `2000`, `0.01`, `'b64f256'`, `MPF_TAIL_LOSS`, `true`."""

    kind: str
    """'int', 'float', 'string' or 'name'."""
    value: Union[int, float, str]
    location: Location
    text: str
    """The value as written in the script."""


@dataclass(frozen=True)
class Assign:
    """`NAME = value`."""

    name: str
    value: Value
    location: Location


@dataclass(frozen=True)
class Call:
    """`name(arg, ...)`."""

    name: str
    args: tuple[Value, ...]
    location: Location


Statement = Union[Assign, Call]


@dataclass(frozen=True)
class Script:
    """A parsed script file."""

    path: str
    text: str
    statements: tuple[Statement, ...]
