"""The log formatter labels warnings and errors and leaves info lines alone."""

from __future__ import annotations

import logging

from gptpipe.log_format import LevelFormatter


def record(level: int, message: str) -> logging.LogRecord:
    return logging.LogRecord("gptpipe", level, __file__, 1, message, None, None)


def test_levels_get_their_label():
    formatter = LevelFormatter("[x] rank 1: %(message)s")
    assert formatter.format(record(logging.INFO, "started")) == "[x] rank 1: started"
    assert formatter.format(record(logging.WARNING, "slow path")) == "[x] rank 1: warning: slow path"
    assert formatter.format(record(logging.ERROR, "failed")) == "[x] rank 1: error: failed"


def test_empty_message_still_labelled():
    assert LevelFormatter("%(message)s").format(record(logging.WARNING, "")) == "warning: "
