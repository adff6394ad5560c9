"""Run the example scripts in cfg/ as they are and record what each reaches.

    python -m gptpipe.bench.examples [--data PATH] [--quick]

For each script: final train and test loss, test accuracy (grokking), wall time of the whole
`gptpipe` command, and the exact command. Writes the "examples" section of docs/benchmarks.md
unless --quick, which runs each script for a few iterations only, to check that they still run.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gptpipe.bench.report import machine_description, write_section

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"
SCRIPTS = ("quickstart.txt", "shakespeare_char.txt", "grok_mod97.txt")


def run_script(script: str, data: Path, extra: list[str]) -> dict:
    """Run one example with the gptpipe command in a temporary folder; return its summary and wall time."""
    with tempfile.TemporaryDirectory(prefix="gptpipe-example-") as folder:
        uses_data_path = "${data_path}" in (REPO_ROOT / "cfg" / script).read_text(encoding="utf-8")
        data_args = [f"data_path={data}"] if uses_data_path else []
        args = [f"script={REPO_ROOT / 'cfg' / script}", *data_args, *extra]
        started = time.perf_counter()
        result = subprocess.run([sys.executable, "-c", "from gptpipe.cli import main; main()", *args],
                                cwd=folder, capture_output=True, text=True)
        wall = time.perf_counter() - started
        if result.returncode != 0:
            raise SystemExit(f"{script} failed with exit status {result.returncode}:\n{result.stderr[-3000:]}")
        (summary_path,) = Path(folder, "outputs").rglob("summary.json")
        summary = json.loads(summary_path.read_text())
    summary["wall_s"] = wall
    # The command as a user types it from the repository root, with the data file's path left out.
    shown = [f"script=cfg/{script}", *("data_path=<tinyshakespeare.txt>" for _ in data_args), *extra]
    summary["command"] = "gptpipe " + " ".join(shlex.quote(a) if "<" not in a else a for a in shown)
    return summary


def format_row(script: str, summary: dict) -> str:
    loss = summary["final_test_loss"]
    unit = summary.get("token_unit")
    bits = f" ({loss / math.log(2):.3f} bits/{unit})" if unit else ""
    accuracy = summary.get("final_test_accuracy")
    accuracy_text = f"{accuracy:.3f}" if accuracy is not None else "-"
    return (f"| `cfg/{script}` | {summary['MODEL_DIMS']} | {summary['iteration']} | "
            f"{summary['final_train_loss']:.3f} | {loss:.3f}{bits} | {accuracy_text} | {summary['wall_s']:.0f} s | "
            f"{summary['tokens_per_s']:,.0f} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="tiny shakespeare text file")
    parser.add_argument("--quick", action="store_true", help="a few iterations each; do not write the docs")
    args = parser.parse_args(argv)
    if not args.data.exists():
        raise SystemExit(f"data file not found: {args.data}; pass --data PATH")

    extra = ["MAX_ITERS=4", "EVAL_INTERVAL=2", "EVAL_ITERS=1", "SAVE_MODEL=false"] if args.quick else []
    rows = []
    commands = []
    for script in SCRIPTS:
        summary = run_script(script, args.data, extra)
        rows.append(format_row(script, summary))
        commands.append(summary["command"])
        print(rows[-1], flush=True)

    header = ("| script | MODEL_DIMS | iterations | train loss | test loss (nats/token) | test accuracy | "
              "wall time | tokens/s |\n|---|---|---|---|---|---|---|---|")
    markdown = "\n".join([
        "## Example scripts",
        "",
        f"Machine: {machine_description()}",
        "",
        "Command: `python -m gptpipe.bench.examples`, which runs each script with the gptpipe command:",
        "",
        *[f"- `{command}`" for command in commands],
        "",
        "Wall time is the whole command, start-up and evaluations included. Test accuracy is reported for "
        "MPF_GROK_BINARY_OP only.",
        "",
        header,
        *rows,
    ])
    if not args.quick:
        write_section("examples", markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
