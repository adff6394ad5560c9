"""Shared output of the benchmarks: machine description and docs/benchmarks.md sections."""

from __future__ import annotations

import os
import platform
import re
import shlex
import sys
from pathlib import Path

import torch

BENCHMARKS_PAGE = Path(__file__).resolve().parents[2] / "docs" / "benchmarks.md"


def machine_description() -> str:
    """Return CPU model, core count, GPU (if any) and torch version on one line."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    text = f"{cpu}, {cores} cores, torch {torch.__version__}, Python {platform.python_version()}"
    if torch.cuda.is_available():
        text += f", GPU {torch.cuda.get_device_name(0)}"
    return text


def command_line() -> str:
    """Return the command that is running, as a user would type it."""
    return "python -m " + " ".join(shlex.quote(a) for a in [_module_name()] + sys.argv[1:])


def _module_name() -> str:
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is None:
        return sys.argv[0]
    # `python -m gptpipe.bench NAME` runs gptpipe.bench.__main__; a user types the package name.
    return spec.name.removesuffix(".__main__")


def write_section(name: str, markdown: str, page: Path | None = None) -> Path:
    """Replace (or append) the section `name` of the benchmarks page with `markdown`.

    Sections are delimited by HTML comments, so each benchmark rewrites only its own part.
    """
    page = page or BENCHMARKS_PAGE
    begin, end = f"<!-- begin {name} -->", f"<!-- end {name} -->"
    block = f"{begin}\n{markdown.strip()}\n{end}"
    text = page.read_text(encoding="utf-8") if page.exists() else "# Benchmarks\n"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(text, encoding="utf-8")
    return page
