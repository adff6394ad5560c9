"""Generated sections of docs/script-reference.md: variables, settings, operations.

The page keeps its hand-written prose; each generated section sits between
`<!-- generated: NAME -->` and `<!-- end generated: NAME -->` markers.
"""

from __future__ import annotations

import re

from gptpipe.config.settings import SETTINGS
from gptpipe.config.variables import VARIABLES


def variables_section() -> str:
    rows = ["| Variable | Type | Default | Unit | Description |", "| --- | --- | --- | --- | --- |"]
    for variable in VARIABLES:
        name = f"`{variable.name}`"
        if variable.aliases:
            name += " (alias " + ", ".join(f"`{a}`" for a in variable.aliases) + ")"
        rows.append(
            f"| {name} | {variable.type_name} | `{variable.default!r}` | {variable.unit or ''} | "
            f"{variable.description} Example: `{variable.example}` |"
        )
    return "\n".join(rows)


def settings_section() -> str:
    rows = ["| Setting | Type | Default | Description |", "| --- | --- | --- | --- |"]
    for setting in SETTINGS:
        rows.append(f"| `{setting.name}` | {setting.type_name} | `{setting.default!r}` | {setting.description} |")
    return "\n".join(rows)


def operations_section() -> str:
    from gptpipe.runtime.registry import load_operations

    parts = []
    for spec in sorted(load_operations().values(), key=lambda s: s.name):
        body = spec.doc.split("\n", 1)
        details = body[1].strip() if len(body) > 1 else ""
        parts.append(f"### `{spec.signature}`\n\n{spec.summary}\n" + (f"\n{details}\n" if details else ""))
        if spec.flags:
            parts[-1] += "\nFlags: " + ", ".join(f"`{f}`" for f in spec.flags) + "\n"
    return "\n".join(parts).rstrip()


SECTIONS = {
    "variables": variables_section,
    "settings": settings_section,
    "operations": operations_section,
}


def render_reference(text: str) -> str:
    """Return `text` with every generated section replaced by its current content."""
    for name, render in SECTIONS.items():
        begin, end = f"<!-- generated: {name} -->", f"<!-- end generated: {name} -->"
        pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
        if pattern.search(text):
            block = f"{begin}\n{render()}\n{end}"
            text = pattern.sub(lambda _: block, text)
    return text
