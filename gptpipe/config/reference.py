"""Text generated from the declarations: `--help`, `conf/config.yaml`, script reference tables."""

from __future__ import annotations

import textwrap
from pathlib import Path

import yaml

from gptpipe.config.dims import CODECS
from gptpipe.config.plan import SUBTREES
from gptpipe.config.settings import SETTINGS
from gptpipe.config.variables import VARIABLES

CONFIG_HEADER = """\
# Generated from gptpipe/config/variables.py and gptpipe/config/settings.py by
# `python -m gptpipe.config.generate`; edit those declarations, not this file.
"""


def _yaml_value(value) -> str:
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("\n...").strip()


def config_yaml() -> str:
    """Return conf/config.yaml: every setting, script variable and dims sub-tree with its default."""
    lines = [CONFIG_HEADER, "defaults:", "  - _self_", ""]
    lines.append("# Settings of the gptpipe command.")
    for setting in SETTINGS:
        lines.append(f"{setting.name}: {_yaml_value(setting.default)}")
    lines.append("")
    lines.append("# Script variables: defaults, overridden by script assignments, overridden by the command line.")
    for variable in VARIABLES:
        lines.append(f"{variable.name}: {_yaml_value(variable.default)}")
    lines.append("")
    lines.append("# Single fields of the compact strings; a value set here wins over the string.")
    for variable, subtree in SUBTREES.items():
        lines.append(f"{subtree}:")
        for field_name in CODECS[variable]().as_dict():
            lines.append(f"  {field_name}: null")
    lines.append("")
    lines.append(HYDRA_SETTINGS)
    return "\n".join(lines)


HYDRA_SETTINGS = """\
hydra:
  job:
    name: gptpipe
    chdir: false
  run:
    dir: outputs/${now:%Y-%m-%d}/${now:%H-%M-%S}
  sweep:
    dir: outputs/${now:%Y-%m-%d}/${now:%H-%M-%S}-multirun
    subdir: ${hydra.job.num}
  help:
    app_name: gptpipe
    header: ''
    footer: ''
    template: ${gptpipe_help:}
  callbacks:
    sweep_summary:
      _target_: gptpipe.runtime.sweep.SweepSummary
  job_logging:
    formatters:
      simple:
        (): gptpipe.log_format.LevelFormatter
        format: '[%(asctime)s] %(message)s'
        datefmt: '%H:%M:%S'
    loggers:
      torch:
        level: WARNING
"""


HELP_FILE = Path(__file__).resolve().parents[1] / "conf" / "help.txt"
"""File with the `gptpipe --help` text, written by `python -m gptpipe.config.generate`."""


def packaged_help_text() -> str:
    """Return the stored `gptpipe --help` text.

    Building it with `help_text` imports every operation module and with them PyTorch, which
    took 3 to 4 s on a 2-core CPU, so `--help` reads the copy that generate writes.
    """
    return HELP_FILE.read_text(encoding="utf-8")


def help_text() -> str:
    """Return the `gptpipe --help` text: usage, variables, settings, operations and flags."""
    from gptpipe.runtime.registry import load_operations

    operations = load_operations()
    out = [
        "gptpipe: train GPT models from small train scripts.",
        "",
        "Usage:",
        "  gptpipe script=PATH [NAME=value ...]        run a train script",
        "  gptpipe script=PATH dry_run=true            check the script and print its plan",
        "  gptpipe script=PATH --multirun A=1,2 B=x,y  sweep: one run per combination",
        "  gptpipe resume=RUN_DIR [NAME=value ...]     continue a run from its newest checkpoint",
        "",
        "Script variables (set in the script or as NAME=value on the command line; the command line wins):",
    ]
    for variable in VARIABLES:
        unit = f", {variable.unit}" if variable.unit else ""
        alias = f" (alias {', '.join(variable.aliases)})" if variable.aliases else ""
        out.append(f"  {variable.name}{alias}: {variable.type_name}{unit}, default {variable.default!r}")
        out.extend(_wrap(variable.description, 6))
    out.append("")
    out.append("Settings (command line only):")
    for setting in SETTINGS:
        out.append(f"  {setting.name}: {setting.type_name}, default {setting.default!r}")
        out.extend(_wrap(setting.description, 6))
    out.append("  model.FIELD, train.FIELD, drop.FIELD: one field of MODEL_DIMS, TRAIN_CONFIG or DROP_CONFIG,")
    out.append("      e.g. model.depth=8; it wins over the string. The fields:")
    out.extend(_field_lines())
    out.append("")
    out.append("Operations:")
    for spec in sorted(operations.values(), key=lambda s: s.name):
        out.append(f"  {spec.signature}")
        out.extend(_wrap(spec.summary, 6))
    out.append("")
    out.extend(_flag_and_optimizer_help())
    out.append("")
    out.append("Exit status:")
    out.append("  0 done; 2 a mistake in the script, a value, a file or the data, a loss that diverged, or a")
    out.append("  sweep with failed jobs (one message each, saying what to do); 130 stopped by Ctrl-C or SIGTERM.")
    out.append("  A Python traceback means a bug in gptpipe.")
    out.append("")
    out.append("Full reference: docs/script-reference.md. Hydra's own options: gptpipe --hydra-help.")
    # Hydra fills the help template with string.Template, so a literal '$' must be written '$$'.
    return "\n".join(out).replace("$", "$$")


def _field_lines() -> list[str]:
    from gptpipe.config.dims import CODECS
    from gptpipe.config.plan import SUBTREES

    return [f"      {root}: " + ", ".join(f"{item.field} ({item.key})" for item in CODECS[variable].KEYS)
            for variable, root in SUBTREES.items()]


def _flag_and_optimizer_help() -> list[str]:
    from gptpipe.model.flags import MODEL_FLAGS
    from gptpipe.optim import DEFAULT_OPTIMIZER, OPTIMIZERS

    lines = ["Model flags (arguments of create_model):"]
    for name, description in MODEL_FLAGS.items():
        lines.append(f"  {name}")
        lines.extend(_wrap(description, 6))
    lines.append("")
    lines.append("Optimizers (optimizer=NAME):")
    for name, description in OPTIMIZERS.items():
        lines.append(f"  {name} (optimizer=default)" if name == DEFAULT_OPTIMIZER else f"  {name}")
        lines.extend(_wrap(description, 6))
    return lines


def _wrap(text: str, indent: int) -> list[str]:
    return textwrap.wrap(text, width=100, initial_indent=" " * indent, subsequent_indent=" " * indent)
