"""The operation registry: every script operation is one function registered under its DSL name.

    @operation(needs_model=True)
    def compute_exact_test(state: RunState, iteration: int = -1, average_over: int = 0) -> None:
        '''Evaluate a checkpoint on freshly sampled test batches ...'''

The parameters' annotations declare what the script may pass: int, float, str, bool, or one of the
path and flag types below, which the plan checks before any operation runs. The docstring's first
line is the one-line summary that `--help` and the script reference print.
"""

from __future__ import annotations

import inspect
import typing
from dataclasses import dataclass, field
from typing import Any, Callable

from gptpipe.errors import ScriptError


class InputFile(str):
    """A path to a file that must exist when the plan is checked."""


class InputDir(str):
    """A path to a folder that must exist when the plan is checked."""


class OutputDir(str):
    """A path to a folder that the operation creates if missing."""


class Flag(str):
    """A bare identifier such as MPF_TAIL_LOSS."""


KIND_NAMES: dict[type, str] = {
    int: "int",
    float: "float",
    str: "string",
    bool: "bool",
    InputFile: "file",
    InputDir: "folder",
    OutputDir: "folder",
    Flag: "flag",
}

REQUIRED = inspect.Parameter.empty


@dataclass(frozen=True)
class Param:
    """One parameter of an operation."""

    name: str
    kind: type
    default: Any = REQUIRED

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def describe(self) -> str:
        text = f"{self.name}: {KIND_NAMES[self.kind]}"
        if not self.required:
            text += f" = {self.default!r}"
        return text


@dataclass(frozen=True)
class OpSpec:
    """A registered operation and what the plan needs to know about it."""

    name: str
    func: Callable[..., Any]
    params: tuple[Param, ...]
    variadic: Param | None
    """The `*args` parameter (for example create_model's flags), or None."""
    summary: str
    doc: str
    needs_model: bool = False
    """The plan rejects this operation unless a model was created or loaded before it."""
    creates_model: bool = False
    """create_model, load_model, load_checkpoint: a model exists after it."""
    data_op: bool = False
    """The operation defines the tokenizer or data; without any, train() uses the default corpus."""
    check: Callable[..., None] | None = None
    """Extra plan-time validation: check(plan_context, *args); raises GptpipeError."""
    flags: tuple[str, ...] = field(default_factory=tuple)
    """For Flag parameters: the accepted identifiers."""

    @property
    def signature(self) -> str:
        parts = [p.describe() for p in self.params]
        if self.variadic is not None:
            parts.append(f"*{self.variadic.name}: {KIND_NAMES[self.variadic.kind]}")
        return f"{self.name}({', '.join(parts)})"

    @property
    def arity(self) -> tuple[int, int | None]:
        """Minimum and maximum number of arguments (None: unbounded)."""
        required = sum(1 for p in self.params if p.required)
        return required, None if self.variadic is not None else len(self.params)


OPERATIONS: dict[str, OpSpec] = {}


def operation(
    name: str | None = None,
    *,
    needs_model: bool = False,
    creates_model: bool = False,
    data_op: bool = False,
    check: Callable[..., None] | None = None,
    flags: tuple[str, ...] = (),
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register the decorated function as the script operation `name` (default: its own name).

    The function takes the RunState first, then the script's arguments.
    """

    def register(func: Callable[..., Any]) -> Callable[..., Any]:
        op_name = name or func.__name__
        hints = typing.get_type_hints(func)
        signature = inspect.signature(func)
        params: list[Param] = []
        variadic: Param | None = None
        for index, parameter in enumerate(signature.parameters.values()):
            if index == 0:
                continue  # the RunState
            kind = hints.get(parameter.name, str)
            if kind not in KIND_NAMES:
                raise TypeError(f"operation {op_name}: parameter {parameter.name} has unsupported type {kind!r}")
            if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
                variadic = Param(parameter.name, kind)
            else:
                params.append(Param(parameter.name, kind, parameter.default))
        doc = inspect.cleandoc(func.__doc__ or "")
        if not doc:
            raise TypeError(f"operation {op_name} needs a docstring: its first line is the --help summary")
        if op_name in OPERATIONS:
            raise TypeError(f"operation {op_name} is registered twice")
        OPERATIONS[op_name] = OpSpec(
            name=op_name,
            func=func,
            params=tuple(params),
            variadic=variadic,
            summary=doc.splitlines()[0],
            doc=doc,
            needs_model=needs_model,
            creates_model=creates_model,
            data_op=data_op,
            check=check,
            flags=tuple(flags),
        )
        return func

    return register


def load_operations() -> dict[str, OpSpec]:
    """Import every module that registers operations and return the registry."""
    # Imported for their @operation side effects.
    import gptpipe.runtime.ops  # noqa: F401

    return OPERATIONS


def unknown_operation(name: str) -> ScriptError:
    from gptpipe.config.variables import UNSUPPORTED, suggest

    if name in UNSUPPORTED:
        return ScriptError(f"operation {name}() is not supported: {UNSUPPORTED[name]}")
    return ScriptError(f"unknown operation {name}()" + suggest(name, OPERATIONS))
