"""`resume=RUN_DIR`: continue an earlier run with its own script and command-line values.

A run folder contains what is needed to repeat the run: `script.txt` (and `data_script.txt`), the
copies of the scripts it ran, and `.hydra/overrides.yaml`, its command-line values. Before Hydra
composes the config, `expand_resume` turns `resume=RUN_DIR` into those values. The copies become
`script` and `data_script`, and the run's checkpoint folder becomes `CHECKPOINT_DIR`. Values given
with `resume=` come last, so they win. `add_resume_step` then puts a `load_checkpoint()` just before the
first train() or net_train(), so the run goes on from its newest checkpoint.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import TYPE_CHECKING

from gptpipe.errors import CheckpointError, ConfigError

if TYPE_CHECKING:
    from gptpipe.config.plan import Plan
    from gptpipe.dsl.nodes import Script

TRAINING_OPERATIONS = ("train", "net_train")
"""Operations that train; resume= loads the newest checkpoint just before the first of them."""

# Settings that belong to one command, not to the run being continued.
_NOT_CARRIED = {"resume", "script", "data_script", "dry_run"}


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def _path_value(path: Path) -> str:
    """Return `path` as a Hydra override value, quoted when it contains characters such as ',' or ' '."""
    text = str(path)
    if re.fullmatch(r"[\w./-]+", text):
        return text
    # Inside quotes, Hydra reads a backslash as an escape only before a quote.
    return "'" + text.replace("'", "\\'") + "'"


def _folder_value(argument: str) -> str:
    """Return the folder of a `resume=...` argument, read as Hydra reads values (quotes, commas)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    text = argument.split("=", 1)[1]
    try:
        override = OverridesParser.create().parse_overrides([argument])[0] if text.strip() else None
    except OverrideParseException:
        override = None  # The command-line check reports the syntax error.
    if override is not None and override.is_sweep_override():
        raise ConfigError(f"{argument}: a sweep over run folders is not supported",
                          hint="continue one run per command; quote a folder whose name contains a comma, "
                          "e.g. resume=\"'runs/a,b'\"")
    value = str(override.value()) if override is not None else text.strip()
    if not value:
        raise ConfigError("resume= needs the folder of the run to continue",
                          hint="e.g. resume=outputs/2026-01-31/12-00-00; the run's log names its folder")
    return value


def expand_resume(argv: list[str]) -> list[str]:
    """Return `argv` with `resume=RUN_DIR` expanded into the run's script and values; unchanged without it."""
    resume_args = [arg for arg in argv if not arg.startswith("-") and _key(arg) == "resume"]
    if not resume_args:
        return argv
    if len(resume_args) > 1:
        raise ConfigError(f"resume= is given {len(resume_args)} times: {' '.join(resume_args)}",
                          hint="give one run folder, e.g. resume=outputs/2026-01-31/12-00-00")

    value = _folder_value(resume_args[0])
    for arg in argv:
        if not arg.startswith("-") and _key(arg) in ("script", "data_script"):
            raise ConfigError(
                f"{arg}: resume= runs the script saved in the run folder, so {_key(arg)}= cannot be given with it",
                hint="leave it out; to continue with another script, call load_checkpoint() before train() in "
                "it and set CHECKPOINT_DIR to the run's checkpoint folder",
            )

    run_dir = Path(value)
    saved = _saved_overrides(run_dir)
    carried = [item for item in saved if _key(item) not in _NOT_CARRIED and not _key(item).startswith("hydra.")]
    carried.append(f"script={_path_value(run_dir / 'script.txt')}")
    data_script = run_dir / "data_script.txt"
    if data_script.is_file():
        carried.append(f"data_script={_path_value(data_script)}")
    if not any(_key(item) == "CHECKPOINT_DIR" for item in carried) and not _scripts_set_checkpoint_dir(run_dir):
        # The run saved into its own folder; the continued run loads from there and saves there too.
        carried.append(f"CHECKPOINT_DIR={_path_value((run_dir / 'checkpoints').resolve())}")

    mine = {_key(arg) for arg in argv if not arg.startswith("-")}
    return [item for item in carried if _key(item) not in mine] + argv


def _saved_overrides(run_dir: Path) -> list[str]:
    """Return the command-line values the run in `run_dir` was started with."""
    from omegaconf import OmegaConf

    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"resume={run_dir}: not a folder",
                          hint="give the run folder that the run's log names, e.g. outputs/2026-01-31/12-00-00")
    if not run_dir.is_dir():
        raise ConfigError(f"resume={run_dir}: folder not found",
                          hint="give the run folder that the run's log names, e.g. outputs/2026-01-31/12-00-00")
    overrides = run_dir / ".hydra" / "overrides.yaml"
    script = run_dir / "script.txt"
    if (run_dir / "multirun.yaml").is_file():
        jobs = sorted((path.name for path in run_dir.iterdir() if path.name.isdigit()), key=int)
        raise ConfigError(
            f"resume={run_dir}: this is a sweep folder, not the folder of one run",
            hint=f"give one job's folder, e.g. resume={run_dir / (jobs[0] if jobs else '0')}",
        )
    missing = [str(path) for path in (script, overrides) if not path.is_file()]
    if missing:
        raise ConfigError(
            f"resume={run_dir}: not a gptpipe run folder; missing {' and '.join(missing)}",
            hint="give the folder of one run (with script.txt and .hydra/); for a sweep, one job's folder, "
            "outputs/<date>/<time>-multirun/<job number>",
        )
    return [str(item) for item in OmegaConf.load(overrides)]


def _scripts_set_checkpoint_dir(run_dir: Path) -> bool:
    """Return True when the run's scripts assign CHECKPOINT_DIR, which then applies to the continued run too."""
    from gptpipe.dsl import parse_file
    from gptpipe.dsl.nodes import Assign

    for name in ("data_script.txt", "script.txt"):
        path = run_dir / name
        if path.is_file():
            for statement in parse_file(str(path)).statements:
                if isinstance(statement, Assign) and statement.name == "CHECKPOINT_DIR":
                    return True
    return False


def add_resume_step(scripts: list[Script], run_dir: str) -> list[Script]:
    """Return `scripts` with load_checkpoint() just before the first train() or net_train().

    A load_checkpoint() the script calls itself may name an older iteration, so the added one,
    which loads the newest checkpoint, goes after it.
    """
    from gptpipe.dsl.nodes import Call

    for index, script in enumerate(scripts):
        for position, statement in enumerate(script.statements):
            if isinstance(statement, Call) and statement.name in TRAINING_OPERATIONS:
                added = Call("load_checkpoint", (), statement.location)
                statements = (*script.statements[:position], added, *script.statements[position:])
                return [*scripts[:index], dataclasses.replace(script, statements=statements), *scripts[index + 1:]]
    raise ConfigError(f"resume={run_dir}: the run's script has no train() or net_train() to continue",
                      hint="resume= continues training; run the script itself with gptpipe script=...")


def started_in(run_dir: str) -> str | None:
    """Return the folder the run in `run_dir` was started in, or None when its Hydra record lacks it."""
    from omegaconf import OmegaConf

    try:
        return str(OmegaConf.select(OmegaConf.load(Path(run_dir) / ".hydra" / "hydra.yaml"), "hydra.runtime.cwd"))
    except (OSError, ValueError):
        return None


def mark_resume_step(plan: Plan, run_dir: str) -> None:
    """Label the load_checkpoint() that add_resume_step put in, and check that there is a checkpoint to load."""
    from gptpipe.runtime.checkpoint import list_checkpoints

    for number, step in enumerate(plan.steps):
        if step.op.name != "load_checkpoint":
            continue
        following = plan.steps[number + 1] if number + 1 < len(plan.steps) else None
        if following is None or following.location != step.location:
            continue  # The script's own load_checkpoint().
        step.note = f"added by resume={run_dir}"
        folder = Path(str(step.values.get("CHECKPOINT_DIR") or ""))
        if not str(step.values.get("CHECKPOINT_DIR") or "") or not list_checkpoints(folder):
            reason = ("the run had SAVE_MODEL false, so it saved none" if not step.values.get("SAVE_MODEL") else
                      "the run had SAVE_MODEL false, or it stopped before its first save (train() saves every "
                      "EVAL_INTERVAL iterations)")
            raise CheckpointError(f"resume={run_dir}: no checkpoint to continue from in {folder}",
                                  hint=f"{reason}; start it again with gptpipe script=...")
        return
