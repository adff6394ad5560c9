"""The `gptpipe` command: Hydra entry point that parses, plans and runs a train script."""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from gptpipe.errors import GptpipeError

if TYPE_CHECKING:
    from gptpipe.config.plan import Plan
    from gptpipe.dsl.nodes import Script

log = logging.getLogger("gptpipe")

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


def main() -> None:
    """Console entry point: check the command line, then hand over to Hydra."""
    import signal

    # SIGTERM, which job schedulers send, stops a run as Ctrl-C does: train() saves a checkpoint
    # and the command exits with EXIT_INTERRUPTED, instead of dying with nothing saved.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    _register_resolvers()
    try:
        from gptpipe.config.resume import expand_resume

        sys.argv[1:] = expand_resume(sys.argv[1:])
        _check_overrides(sys.argv[1:])
    except GptpipeError as error:
        print(f"gptpipe: error: {error}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
    sys.argv[1:] = _flags_first(sys.argv[1:])
    scratch = _dry_run_scratch_dir(sys.argv[1:])
    if scratch is None:
        hydra_main()
        return
    # A dry run does no work, so it leaves no run directory behind either.
    sys.argv[1:] = [*sys.argv[1:], f"hydra.run.dir={scratch}"]
    try:
        hydra_main()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _dry_run_scratch_dir(argv: list[str]) -> str | None:
    """Return a temporary run directory for a single dry run, or None for other commands."""
    if "--multirun" in argv or "-m" in argv or any(arg.startswith("hydra.run.dir=") for arg in argv):
        return None
    if not any(arg.lower() in ("dry_run=true", "dry_run=yes", "dry_run=1") for arg in argv):
        return None
    return tempfile.mkdtemp(prefix="gptpipe-dry-run-")


# Hydra options that take a value; their value is the next argument.
_OPTIONS_WITH_VALUE = {"--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn",
                       "--config-dir", "-cd", "--experimental-rerun"}
_INFO_VALUES = {"all", "config", "defaults", "defaults-tree", "plugins", "searchpath"}


def _flags_first(argv: list[str]) -> list[str]:
    """Move Hydra's options before the overrides, so `script=x.txt --multirun A=1,2` parses.

    Hydra's argument parser accepts overrides only in one run, so options between overrides
    would otherwise be rejected as unrecognized arguments.
    """
    options: list[str] = []
    overrides: list[str] = []
    index = 0
    while index < len(argv):
        arg = argv[index]
        if arg.startswith("-"):
            options.append(arg)
            has_value = arg in _OPTIONS_WITH_VALUE or (arg == "--info" and index + 1 < len(argv)
                                                        and argv[index + 1] in _INFO_VALUES)
            if has_value and index + 1 < len(argv):
                options.append(argv[index + 1])
                index += 1
        else:
            overrides.append(arg)
        index += 1
    return options + overrides


FAILED_SWEEP_JOBS: list[str] = []
"""Jobs of this --multirun sweep that ended with an error ("NUMBER (OVERRIDES)"); the sweep goes on without them."""


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def hydra_main(config: DictConfig) -> None:
    try:
        run(config)
    except GptpipeError as error:
        report_error(error)
        hydra_config = HydraConfig.get()
        if hydra_config.mode == RunMode.MULTIRUN:
            # One diverged or failed job should not cost the rest of the sweep, so it is only recorded here.
            FAILED_SWEEP_JOBS.append(f"{hydra_config.job.num} ({' '.join(hydra_config.overrides.task)})")
            job_dir = Path(hydra_config.runtime.output_dir)
            if job_dir.is_dir():
                # The sweep summary shows it in the job's row.
                from gptpipe.runtime.sweep import ERROR_FILE

                (job_dir / ERROR_FILE).write_text(f"{error}\n", encoding="utf-8")
            return
        sys.exit(EXIT_USER_ERROR)
    except KeyboardInterrupt:
        log.info("interrupted")
        hydra_config = HydraConfig.get()
        if hydra_config.mode == RunMode.MULTIRUN:
            _summarise_stopped_sweep(Path(str(hydra_config.sweep.dir)), hydra_config.job.num)
        sys.exit(EXIT_INTERRUPTED)


def _summarise_stopped_sweep(sweep_dir: Path, job: int) -> None:
    """Write the sweep summary of the jobs that ran when Ctrl-C stops a sweep in job `job`."""
    from gptpipe.runtime.sweep import write_sweep_summary

    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    planned = None
    try:
        master = OmegaConf.load(sweep_dir / "multirun.yaml")
        expanded = sweep_jobs([str(item) for item in master.hydra.overrides.task])
        planned = expanded[0] if expanded else None
    except (OSError, HydraException, OmegaConfBaseException) as error:
        # The table is still written, without rows for the jobs that did not run.
        log.warning("sweep summary: cannot list the jobs that did not run: %s", error)
    paths = write_sweep_summary(sweep_dir, planned) if sweep_dir.is_dir() else []
    log.info("sweep stopped in job %d; later jobs did not run%s", job,
             f"; summary of the jobs so far: {', '.join(str(path) for path in paths)}" if paths else "")


def run(config: DictConfig) -> None:
    """Run one job: worker agent, or parse, plan and (unless dry_run) execute a script."""
    from gptpipe.runtime.plan_report import format_plan, log_overrides
    from gptpipe.runtime.runner import execute_plan

    if config.get("worker_port") is not None:
        from gptpipe.distributed.worker import serve

        serve(config)
        return

    hydra_config = HydraConfig.get()
    run_dir = Path(hydra_config.runtime.output_dir)
    if not config.get("script"):
        raise GptpipeError(
            "no train script given",
            hint="run gptpipe script=PATH, e.g. gptpipe script=cfg/quickstart.txt; gptpipe --help lists the options",
        )

    scripts, plan = plan_job(config, hydra_config.overrides.task)

    if not plan.steps:
        log.warning("%s has no operations, so there is nothing to run; add create_model() and train()",
                    " + ".join(s.path for s in scripts))
    plan_text = format_plan(plan, config)
    _save_inputs(run_dir, scripts, plan_text)
    if config.get("dry_run"):
        try:
            print(plan_text, flush=True)
        except BrokenPipeError:
            # The reader stopped early (`| head`); stdout goes nowhere from here on, without an error at exit.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return
    if config.get("resume"):
        log.info("continuing the run in %s with its script and command-line values: %s", config.resume,
                 " ".join(item for item in hydra_config.overrides.task if not item.startswith("resume=")))
    log_overrides(plan, config)
    log.info("run directory: %s", run_dir)
    from gptpipe.distributed import maybe_launch

    if not maybe_launch(plan, config, run_dir):
        execute_plan(plan, config, run_dir)
    log.info("done")


def plan_job(config: DictConfig, task_overrides) -> tuple[list[Script], Plan]:
    """Parse the job's scripts and build its checked plan; return (scripts, plan)."""
    from gptpipe.config.plan import build_plan
    from gptpipe.dsl import parse_file

    scripts = []
    if config.get("data_script"):
        scripts.append(parse_file(config.data_script))
    scripts.append(parse_file(config.script))
    resume = config.get("resume")
    if not resume:
        return scripts, build_plan(scripts, config, _override_keys(task_overrides))
    from gptpipe.config.resume import add_resume_step, mark_resume_step, started_in

    scripts = add_resume_step(scripts, str(resume))
    try:
        plan = build_plan(scripts, config, _override_keys(task_overrides))
    except GptpipeError as error:
        first = started_in(str(resume))
        if first and Path(first).resolve() != Path(os.getcwd()).resolve():
            known = "relative paths are taken from the folder gptpipe" in (error.hint or "")
            reason = "" if known else ", and relative paths are taken from the folder gptpipe is started in"
            error.hint = (f"{error.hint}; " if error.hint else "") + (
                f"the run was started in {first}{reason}: run this command there")
        raise
    mark_resume_step(plan, str(resume))
    return scripts, plan


def check_sweep_jobs(config: DictConfig) -> int:
    """Plan every job of a --multirun sweep from its master `config`; return the number of jobs.

    Raises the first job's GptpipeError, naming the job and its swept values, so a bad value in
    any combination stops the sweep before its first job trains.
    """
    from hydra.core.global_hydra import GlobalHydra

    loader = GlobalHydra.instance().config_loader()
    expanded = sweep_jobs([str(item) for item in config.hydra.overrides.task])
    if expanded is None:
        return 0  # An interval sweep: Hydra's basic sweeper reports that it cannot run it.
    jobs, choices = expanded
    checkpoint_dirs: dict[str, tuple[int, str]] = {}
    for number, job in enumerate(jobs):
        job_config = loader.load_sweep_config(config, job)
        if not job_config.get("script") or job_config.get("worker_port") is not None:
            continue
        swept = " ".join(item for item, options in zip(job, choices) if len(options) > 1)
        try:
            _, plan = plan_job(job_config, job)
        except GptpipeError as error:
            raise type(error)(
                f"sweep job {number} ({swept}; jobs 0 to {len(jobs) - 1}): {error.message}; no job was started",
                location=error.location, hint=error.hint,
            ) from None
        folder = _shared_checkpoint_dir(plan)
        if folder is not None and folder in checkpoint_dirs:
            earlier, earlier_swept = checkpoint_dirs[folder]
            raise GptpipeError(
                f"sweep jobs {earlier} ({earlier_swept}) and {number} ({swept}) both save checkpoints to "
                f"CHECKPOINT_DIR {folder}, so the later job would overwrite the earlier one's; no job was started",
                hint="set SAVE_MODEL=false: jobs that continue one run with resume= all save into its "
                "checkpoint folder" if job_config.get("resume") else "leave CHECKPOINT_DIR unset (each job saves "
                "into its own folder's checkpoints/), sweep it too, or set SAVE_MODEL=false",
            )
        if folder is not None:
            checkpoint_dirs[folder] = (number, swept)
    return len(jobs)


def sweep_jobs(task: list[str]) -> tuple[list[list[str]], list[list[str]]] | None:
    """Return (each job's overrides, the values of each override) of a sweep, in Hydra's job order.

    Returns None for an interval sweep, which Hydra's basic sweeper cannot run.
    """
    import itertools

    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser

    loader = GlobalHydra.instance().config_loader() if GlobalHydra.instance().is_initialized() else None
    choices = []
    for override in OverridesParser.create(config_loader=loader).parse_overrides(task):
        key = override.get_key_element()
        if override.is_discrete_sweep():
            choices.append([f"{key}={value}" for value in override.sweep_string_iterator()])
        elif override.is_sweep_override():
            return None
        else:
            choices.append([f"{key}={override.get_value_element_as_str()}"])
    return [list(job) for job in itertools.product(*choices)], choices


def _shared_checkpoint_dir(plan: Plan) -> str | None:
    """Return the CHECKPOINT_DIR a plan's train() steps save into, or None when they save into the run folder."""
    for step in plan.steps:
        if step.op.name == "train" and step.values.get("SAVE_MODEL") and step.values.get("CHECKPOINT_DIR"):
            return str(Path(str(step.values["CHECKPOINT_DIR"])).resolve())
    return None


def _override_keys(overrides) -> set[str]:
    keys = set()
    for item in overrides:
        key = item.split("=", 1)[0].lstrip("+~")
        keys.add(key)
    return keys


def _save_inputs(run_dir: Path, scripts, plan_text: str) -> None:
    """Store the script text and the plan beside Hydra's .hydra/ so a run can be repeated exactly."""
    run_dir.mkdir(parents=True, exist_ok=True)
    for index, script in enumerate(scripts):
        name = "script.txt" if index == len(scripts) - 1 else "data_script.txt"
        (run_dir / name).write_text(script.text, encoding="utf-8")
    (run_dir / "plan.txt").write_text(plan_text + "\n", encoding="utf-8")


def report_error(error: GptpipeError) -> None:
    """Print `error` once on stderr as 'gptpipe: error: ...' and add it to the run log."""
    # The run log gets the error too, where its formatter adds "error: ". The console gets it once, on stderr.
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.emit(logging.LogRecord("gptpipe", logging.ERROR, __file__, 0, str(error), None, None))
    print(f"gptpipe: error: {error}", file=sys.stderr)


def _register_resolvers() -> None:
    from gptpipe.config.reference import packaged_help_text

    if not OmegaConf.has_resolver("gptpipe_help"):
        OmegaConf.register_new_resolver("gptpipe_help", packaged_help_text)


def _check_subtree_field(key: str) -> None:
    from gptpipe.config.dims import CODECS
    from gptpipe.config.plan import SUBTREES
    from gptpipe.config.variables import suggest

    root, _, field = key.partition(".")
    variable = next(name for name, subtree in SUBTREES.items() if subtree == root)
    fields = list(CODECS[variable]().as_dict())
    if field not in fields:
        # The string's letters (slow, ch, relu) are the names users know; map them to their fields.
        by_letter = {item.key: item.field for item in CODECS[variable].KEYS}
        if field in by_letter:
            guess = f"; did you mean {root}.{by_letter[field]}? ({field} in {variable})"
        else:
            guess = suggest(key, [f"{root}.{name}" for name in fields]).replace("known names are", "valid fields are")
        raise GptpipeError(
            f"unknown setting {key}{guess}",
            hint=f"{root}.FIELD sets one field of {variable}; valid fields: "
            + ", ".join(f"{item.field} ({item.key})" for item in CODECS[variable].KEYS),
        )


def _check_added_key(key: str, known: set[str]) -> None:
    """Reject +NAME=value when NAME is a known name or close to one, which is a typo rather than a new key."""
    from gptpipe.config.variables import closest

    name = key.lstrip("+~")
    if not key.startswith("+") or key.startswith("++") or "." in name:
        return  # ++name=value sets a key whether or not it exists, as Hydra defines it.
    if name in known:
        raise GptpipeError(f"+{name}: {name} exists already, so it cannot be added",
                           hint=f"set it without the plus: {name}=value")
    close = closest(name, known, cutoff=0.8)
    if close:
        raise GptpipeError(
            f"+{name} adds a new config key, but {name} looks like a misspelling of {close}",
            hint=f"write {close}=value; +name=value is only for new keys that scripts read as ${{name}}",
        )


def _check_overrides(argv: list[str]) -> None:
    """Reject unknown command-line names with a suggestion, before Hydra prints its own error."""
    from gptpipe.config.plan import SUBTREES
    from gptpipe.config.settings import BY_NAME as SETTINGS
    from gptpipe.config.variables import BY_NAME as VARIABLES
    from gptpipe.config.variables import UNSUPPORTED, suggest

    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    known = set(SETTINGS) | set(VARIABLES)
    overrides = [arg for arg in _flags_first(argv) if not arg.startswith("-")]
    # Values of Hydra options (`--cfg job`, `--config-name x`) are not overrides.
    for index, arg in enumerate(argv[:-1]):
        if arg in _OPTIONS_WITH_VALUE or arg == "--info":
            if argv[index + 1] in overrides:
                overrides.remove(argv[index + 1])
    for arg in overrides:
        if "=" not in arg:
            raise GptpipeError(
                f"invalid command-line argument '{arg}': expected NAME=value",
                hint=f"e.g. {arg}=true; gptpipe --help lists every variable and setting",
            )
    try:
        OverridesParser.create().parse_overrides(overrides)
    except OverrideParseException as error:
        first_line = str(error).strip().splitlines()[0]
        raise GptpipeError(
            f"invalid command-line override: {first_line}",
            hint="write NAME=value; quote values with special characters, e.g. data_dir='/my data'",
        ) from None
    for arg in argv:
        if arg.startswith("-") or "=" not in arg:
            continue
        key = arg.split("=", 1)[0]
        if key.startswith(("+", "~")):
            _check_added_key(key, known)
            continue  # Hydra's explicit add/delete syntax: the user takes charge.
        root = key.split(".", 1)[0]
        if root == "hydra":
            continue
        if root in SUBTREES.values():
            _check_subtree_field(key)
            continue
        if root in UNSUPPORTED:
            raise GptpipeError(f"{root} is not supported: {UNSUPPORTED[root]}")
        if root not in known:
            raise GptpipeError(
                f"unknown name on the command line: {key}" + suggest(root, known),
                hint="gptpipe --help lists every variable and setting; a new key that scripts read as ${name} "
                "is added with +name=value",
            )


