"""The train script language: lexer, parser and syntax tree."""

from gptpipe.dsl.nodes import Assign, Call, Script, Value
from gptpipe.dsl.parser import parse_file, parse_text
from gptpipe.errors import ScriptError

__all__ = ["Assign", "Call", "Script", "ScriptError", "Value", "parse_file", "parse_text"]
