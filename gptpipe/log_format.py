"""The log line format: time and message, with warnings and errors marked as such."""

from __future__ import annotations

import logging


class LevelFormatter(logging.Formatter):
    """A logging.Formatter that puts "warning: " or "error: " before messages of those levels.

    Info lines, most of a run's log, keep the plain message. Hydra's job_logging config builds it
    with `format` and `datefmt` keys, as logging.config.dictConfig passes them by name.
    """

    def __init__(self, format: str | None = None, datefmt: str | None = None):  # noqa: A002 (dictConfig's key)
        super().__init__(format, datefmt)

    def formatMessage(self, record: logging.LogRecord) -> str:
        text = super().formatMessage(record)
        if record.levelno < logging.WARNING:
            return text
        label = "warning: " if record.levelno < logging.ERROR else "error: "
        message = record.message
        # Insert the label before the message, after any time or rank prefix the format adds.
        position = text.rfind(message) if message else -1
        if position < 0:
            return label + text
        return text[:position] + label + text[position:]
