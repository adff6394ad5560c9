"""Lexer and parser: every construct of the language and every syntax error."""

from __future__ import annotations

import pytest

from gptpipe.dsl import Assign, Call, ScriptError, parse_file, parse_text


def statements(text):
    return parse_text(text, "s.txt").statements


def test_assign_and_call():
    result = statements("MODEL_DIMS = 'e512h2d36w1024'\ncreate_model(MPF_TAIL_LOSS)\ntrain()\n")
    assert [type(s) for s in result] == [Assign, Call, Call]
    assert result[0].value.value == "e512h2d36w1024"
    assert result[1].args[0].kind == "name"
    assert result[2].args == ()


def test_statements_share_a_line():
    result = statements("A = 1 train() B = 'x'")
    assert [s.name for s in result] == ["A", "train", "B"]


def test_comment_after_statement():
    result = statements("A = 1 # train()\n# only a comment\nB = 2")
    assert [s.name for s in result] == ["A", "B"]


@pytest.mark.parametrize(
    "text, kind, value",
    [
        ("2000000", "int", 2000000),
        ("0.01", "float", 0.01),
        (".5", "float", 0.5),
        ("-1", "int", -1),
        ("+3", "int", 3),
        ("1e-3", "float", 0.001),
        ("2.5E2", "float", 250.0),
        ("'single'", "string", "single"),
        ('"double"', "string", "double"),
        ("'it has # no comment'", "string", "it has # no comment"),
        ("''", "string", ""),
        ("MPF_TAIL_LOSS", "name", "MPF_TAIL_LOSS"),
        ("TRUE", "name", "TRUE"),
    ],
)
def test_value_kinds(text, kind, value):
    (statement,) = statements(f"X = {text}")
    assert statement.value.kind == kind
    assert statement.value.value == value


def test_call_arguments():
    (call,) = statements("f(1, 'a', X, -2.5)")
    assert [a.value for a in call.args] == [1, "a", "X", -2.5]


def test_crlf_tabs_and_byte_order_mark():
    result = statements("\ufeffA\t=\t1\r\nB = 'x'\r\ntrain()\r\n")
    assert [s.name for s in result] == ["A", "B", "train"]
    assert result[1].value.value == "x"


def test_locations():
    result = statements("A = 1\n  train( 7 )\n")
    assert (result[1].location.line, result[1].location.col) == (2, 3)
    assert (result[1].args[0].location.line, result[1].args[0].location.col) == (2, 10)
    assert result[1].location.file == "s.txt"


def test_empty_script():
    assert statements("# nothing\n\n") == ()


@pytest.mark.parametrize(
    "text, line, col, message",
    [
        ('SAVE_MODEL = false"\nX = 1\nY = 2\n', 1, 19, "unterminated string"),
        ("X = 'abc\nY = 1", 1, 5, "unterminated string"),
        ("train(\nX = 1", 1, 6, "missing ')'"),
        ("train(1, 2", 1, 6, "missing ')'"),
        ("X =\ntrain()", 1, 3, "missing value after '='"),
        ("X =", 1, 3, "missing value after '='"),
        ("X = = 1", 1, 5, "unexpected '='; expected a value"),
        ("A = 1 @", 1, 7, "unexpected character '@'"),
        ("A = 1\n  $x", 2, 3, "unexpected character '$'"),
        ("train(1 2)", 1, 9, "unexpected number 2; expected ',' or ')'"),
        ("= 5", 1, 1, "unexpected '='; expected a statement"),
        ("X = foo(1)", 1, 5, "an operation call cannot be a value"),
        ("train(1,)", 1, 9, "unexpected ')'; expected a value"),
        ("'abc'", 1, 1, "unexpected string 'abc'"),
        ("X 5", 1, 3, "unexpected number 5; expected '=' or '('"),
        ("X\n", 1, 2, "unexpected end of file; expected '=' or '('"),
        ("train)", 1, 6, "unexpected ')'; expected '=' or '('"),
    ],
)
def test_syntax_errors(text, line, col, message):
    with pytest.raises(ScriptError) as caught:
        parse_text(text, "s.txt")
    error = caught.value
    assert (error.location.line, error.location.col) == (line, col)
    assert message in error.message


def test_error_shows_caret_under_column():
    with pytest.raises(ScriptError) as caught:
        parse_text("MAX_ITERS = 10\nSAVE_MODEL = false\"\n", "cfg/x.txt")
    text = str(caught.value)
    lines = text.splitlines()
    assert lines[0].startswith("cfg/x.txt:2:19: unterminated string")
    assert lines[1] == '    SAVE_MODEL = false"'
    assert lines[2] == "    " + " " * 18 + "^"


def test_caret_with_tab_indent():
    with pytest.raises(ScriptError) as caught:
        parse_text("\tX = @", "s.txt")
    lines = str(caught.value).splitlines()
    assert lines[2].index("^") == lines[1].index("@")


def test_parse_file_missing(tmp_path):
    with pytest.raises(ScriptError) as caught:
        parse_file(tmp_path / "nope.txt")
    assert "script file not found" in caught.value.message


def test_parse_file_not_utf8(tmp_path):
    path = tmp_path / "s.txt"
    path.write_bytes(b"X = '\xff'\n")
    with pytest.raises(ScriptError) as caught:
        parse_file(path)
    assert "not valid UTF-8" in caught.value.message


def test_parse_file_reads_crlf(tmp_path):
    path = tmp_path / "s.txt"
    path.write_bytes(b"\xef\xbb\xbfMAX_ITERS = 5\r\ntrain()\r\n")
    assert [s.name for s in parse_file(path).statements] == ["MAX_ITERS", "train"]
