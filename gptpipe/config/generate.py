"""Regenerate the files that follow from the declarations: conf/config.yaml, conf/help.txt
(the `gptpipe --help` text) and the generated sections of docs/script-reference.md.

    python -m gptpipe.config.generate          # rewrite them
    python -m gptpipe.config.generate --check  # exit 1 if they are out of date
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gptpipe.config.reference import HELP_FILE, config_yaml, help_text

PACKAGE_DIR = Path(__file__).resolve().parents[1]
CONFIG_FILE = PACKAGE_DIR / "conf" / "config.yaml"
REFERENCE_FILE = PACKAGE_DIR.parent / "docs" / "script-reference.md"


def generated_files() -> dict[Path, str]:
    """Return each generated file's path and expected content."""
    from gptpipe.config.reference_doc import render_reference

    files = {CONFIG_FILE: config_yaml(), HELP_FILE: help_text()}
    if REFERENCE_FILE.exists():
        files[REFERENCE_FILE] = render_reference(REFERENCE_FILE.read_text(encoding="utf-8"))
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that the files are up to date")
    args = parser.parse_args(argv)
    stale = []
    for path, content in generated_files().items():
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current != content:
            stale.append(path)
            if not args.check:
                path.write_text(content, encoding="utf-8")
    if args.check and stale:
        names = ", ".join(str(p) for p in stale)
        print(f"out of date: {names}; run python -m gptpipe.config.generate", file=sys.stderr)
        return 1
    for path in stale:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
