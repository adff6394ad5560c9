"""Tokens of the train script language (SLY lexer)."""

from __future__ import annotations

from sly import Lexer

from gptpipe.errors import Location, ScriptError

TOKEN_NAMES = {
    "NAME": "a name",
    "NUMBER": "a number",
    "STRING": "a string",
    "ASSIGN": "'='",
    "LPAREN": "'('",
    "RPAREN": "')'",
    "COMMA": "','",
}
"""Description of each token type in error messages."""


class ScriptLexer(Lexer):
    """Splits script text into NAME, NUMBER, STRING and punctuation tokens.

    Strings are one line each, in single or double quotes, with no escape sequences. `#` starts a
    comment that runs to the end of the line. Spaces, tabs and carriage returns (CRLF files) are
    ignored.
    """

    tokens = {NAME, NUMBER, STRING, ASSIGN, LPAREN, RPAREN, COMMA}

    ignore = " \t\r"
    ignore_comment = r"\#[^\n]*"

    NUMBER = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
    STRING = r"'[^'\n]*'|\"[^\"\n]*\""
    NAME = r"[A-Za-z_][A-Za-z0-9_]*"
    ASSIGN = r"="
    LPAREN = r"\("
    RPAREN = r"\)"
    COMMA = r","

    def __init__(self, path: str, text: str):
        self.path = path
        self.text = text
        self.lines = text.split("\n")

    @_(r"'[^'\n]*|\"[^\"\n]*")
    def UNTERMINATED_STRING(self, token):
        quote = token.value[0]
        raise ScriptError(
            f"unterminated string: the {quote} opened here has no closing {quote} on the same line",
            location=self.location(token.index),
            hint="strings are one line each; close the quote before the end of the line",
        )

    @_(r"\n+")
    def ignore_newline(self, token):
        self.lineno += len(token.value)

    def location(self, index: int) -> Location:
        """Return the Location of character `index` of the text."""
        line_start = self.text.rfind("\n", 0, index) + 1
        line = self.text.count("\n", 0, index) + 1
        return Location(self.path, line, index - line_start + 1, self.lines[line - 1])

    def error(self, token):
        char = token.value[0]
        raise ScriptError(
            f"unexpected character {char!r}",
            location=self.location(self.index),
            hint="a statement is NAME = value or name(arg, ...); strings need quotes; '#' starts a comment",
        )
