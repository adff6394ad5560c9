"""Grammar of the train script language (SLY parser) and the parse entry points.

    script     : statements
    statements : statements statement | <empty>
    statement  : NAME '=' value | NAME '(' args ')' | NAME '(' ')'
    args       : args ',' value | value
    value      : NUMBER | STRING | NAME

Statements need no separator, so `A = 1 train()` is two statements.
"""

from __future__ import annotations

from pathlib import Path

from sly import Parser

from gptpipe.dsl.lexer import TOKEN_NAMES, ScriptLexer
from gptpipe.dsl.nodes import Assign, Call, Script, Value
from gptpipe.errors import Location, ScriptError

BYTE_ORDER_MARK = "\ufeff"


class ScriptParser(Parser):
    """Builds Assign and Call nodes; syntax errors raise ScriptError at the offending token."""

    tokens = ScriptLexer.tokens

    def __init__(self, lexer: ScriptLexer):
        self.lexer = lexer

    @_("statements")
    def script(self, p):
        return tuple(p.statements)

    @_("statements statement")
    def statements(self, p):
        return p.statements + [p.statement]

    @_("")
    def statements(self, p):
        return []

    @_("NAME ASSIGN value")
    def statement(self, p):
        return Assign(p.NAME, p.value, self.lexer.location(p.index))

    @_("NAME LPAREN args RPAREN")
    def statement(self, p):
        return Call(p.NAME, tuple(p.args), self.lexer.location(p.index))

    @_("NAME LPAREN RPAREN")
    def statement(self, p):
        return Call(p.NAME, (), self.lexer.location(p.index))

    @_("args COMMA value")
    def args(self, p):
        return p.args + [p.value]

    @_("value")
    def args(self, p):
        return [p.value]

    @_("NUMBER")
    def value(self, p):
        text = p.NUMBER
        is_int = not any(c in text for c in ".eE")
        number = int(text) if is_int else float(text)
        return Value("int" if is_int else "float", number, self.lexer.location(p.index), text)

    @_("STRING")
    def value(self, p):
        return Value("string", p.STRING[1:-1], self.lexer.location(p.index), p.STRING)

    @_("NAME")
    def value(self, p):
        return Value("name", p.NAME, self.lexer.location(p.index), p.NAME)

    def error(self, token):
        stack = self.symstack
        previous = stack[-1] if stack else None
        previous_type = getattr(previous, "type", None)
        before_previous_type = getattr(stack[-2], "type", None) if len(stack) >= 2 else None
        open_paren = self._unclosed_paren()

        # `X =` at the end of the file, or `X =` with the next statement on the following line.
        assign = None
        if previous_type == "ASSIGN":
            assign = previous
        elif previous_type == "NAME" and before_previous_type == "ASSIGN" and token is not None:
            assign = stack[-2] if self._line(token) != self._line(stack[-2]) else None
        if assign is not None and (token is None or self._line(token) != self._line(assign)):
            raise ScriptError(
                "missing value after '='",
                location=self.lexer.location(assign.index),
                hint="write a number, a quoted string or a name after '=', e.g. MAX_ITERS = 1000",
            )

        if previous_type == "NAME" and before_previous_type == "ASSIGN" and token.type == "LPAREN":
            raise ScriptError(
                "an operation call cannot be a value",
                location=self.lexer.location(previous.index),
                hint="assign a number, a string or a name; call operations on their own line, e.g. train()",
            )

        if open_paren is not None and (token is None or self._line(token) != self._line(open_paren)):
            raise ScriptError(
                "missing ')': this '(' is not closed",
                location=self.lexer.location(open_paren.index),
                hint="close the argument list on the same line, e.g. train()",
            )

        expected = self._expected(previous_type, open_paren is not None)
        if token is None:
            raise ScriptError(f"unexpected end of file; expected {expected}", location=self._end_location())
        raise ScriptError(
            f"unexpected {_describe(token)}; expected {expected}",
            location=self.lexer.location(token.index),
            hint=_hint_for(token, previous_type, open_paren is not None),
        )

    @staticmethod
    def _expected(previous_type: str | None, in_call: bool) -> str:
        if previous_type == "ASSIGN":
            return "a value (a number, a quoted string or a name)"
        if previous_type == "LPAREN":
            return "a value or ')'"
        if previous_type == "COMMA":
            return "a value"
        if in_call:
            return "',' or ')'"
        if previous_type == "NAME":
            return "'=' or '('"
        return "a statement (NAME = value or name(args))"

    def _line(self, token) -> int:
        return self.lexer.location(token.index).line

    def _unclosed_paren(self):
        depth = 0
        for symbol in reversed(self.symstack):
            kind = getattr(symbol, "type", None)
            if kind == "RPAREN":
                depth += 1
            elif kind == "LPAREN":
                if depth == 0:
                    return symbol
                depth -= 1
        return None

    def _end_location(self) -> Location:
        lines = self.lexer.lines
        line = len(lines)
        while line > 1 and not lines[line - 1].strip():
            line -= 1
        text = lines[line - 1]
        return Location(self.lexer.path, line, len(text.rstrip("\r")) + 1, text)


def _describe(token) -> str:
    if token.type in ("NAME", "NUMBER", "STRING"):
        return f"{TOKEN_NAMES[token.type][2:]} {token.value}"
    return TOKEN_NAMES[token.type]


def _hint_for(token, previous_type: str | None, in_call: bool) -> str | None:
    if in_call and token.type in ("NAME", "NUMBER", "STRING"):
        return "separate arguments with ','"
    if token.type == "ASSIGN" and previous_type not in ("NAME", "ASSIGN"):
        return "a statement starts with a name: NAME = value or name(args)"
    if token.type in ("NUMBER", "STRING") and previous_type in ("statements", "statement", None):
        return "a value must follow NAME =, or be an argument inside name(...)"
    return None


def parse_text(text: str, path: str = "<script>") -> Script:
    """Parse script text; raise ScriptError with file:line:col on the first syntax error."""
    if text.startswith(BYTE_ORDER_MARK):
        text = text[len(BYTE_ORDER_MARK):]
    lexer = ScriptLexer(path, text)
    parser = ScriptParser(lexer)
    statements = parser.parse(lexer.tokenize(text))
    return Script(path=path, text=text, statements=tuple(statements or ()))


def parse_file(path: str | Path) -> Script:
    """Read and parse a script file (UTF-8, optional byte-order mark, LF or CRLF line ends)."""
    file = Path(path)
    try:
        raw = file.read_bytes()
    except FileNotFoundError:
        parent = "exists" if file.parent.exists() else "does not exist either"
        raise ScriptError(f"script file not found: {file} (its folder {file.parent} {parent})") from None
    except IsADirectoryError:
        raise ScriptError(f"script path is a folder, not a file: {file}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ScriptError(
            f"script file {file} is not valid UTF-8 (byte {error.start}); save it as UTF-8"
        ) from None
    return parse_text(text, str(path))
