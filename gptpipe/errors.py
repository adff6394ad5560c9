"""Errors a user can cause. The command prints them as one message and exits with status 2."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Location:
    """A position in a script: 1-based line and column, plus the text of that line."""

    file: str
    line: int
    col: int
    source_line: str = ""

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


class GptpipeError(Exception):
    """An error the user can fix: a bad script, value, file or worker.

    `location`, when set, points at the script text that caused it, and the message is
    printed as `file:line:col: message` with the source line and a caret under the column.
    """

    def __init__(self, message: str, *, location: Location | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.location = location
        self.hint = hint

    def with_location(self, location: Location) -> GptpipeError:
        """Return this error pointed at `location`, unless it already has a location."""
        if self.location is None:
            self.location = location
        return self

    def __str__(self) -> str:
        text = self.message
        if self.location is not None:
            loc = self.location
            text = f"{loc}: {text}"
            if loc.source_line:
                line = loc.source_line.rstrip("\r\n").replace("\t", " ")
                text += f"\n    {line}\n    {' ' * (loc.col - 1)}^"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class ScriptError(GptpipeError):
    """A train script that does not lex, parse or validate."""


class ConfigError(GptpipeError):
    """An invalid variable value, compact string (MODEL_DIMS, ...) or setting."""


class DataError(GptpipeError):
    """Missing, empty or malformed training data."""


class CheckpointError(GptpipeError):
    """A model or checkpoint file that cannot be read or does not fit the run."""


class DistributedError(GptpipeError):
    """A device, worker or launch failure in a multi-process or multi-host run."""


class TrainingStopped(GptpipeError):
    """Training stopped early (non-finite loss); the run directory stays consistent."""
