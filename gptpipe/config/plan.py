"""The plan: a parsed script checked as a whole against the config before any work.

Values are resolved with this precedence, lowest first: defaults in conf/config.yaml,
assignments in the script (in program order), command-line overrides. An override replaces every
assignment of its variable. Each step records the variable values it will see.
"""

from __future__ import annotations

import difflib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from gptpipe.config.dims import CODECS, CompactDims
from gptpipe.config.variables import BY_NAME, VARIABLES, Variable, lookup
from gptpipe.dsl.nodes import Assign, Call, Script, Value
from gptpipe.errors import ConfigError, GptpipeError, Location, ScriptError

log = logging.getLogger("gptpipe")

# Config sub-tree that can override single fields of each compact string
# (`model.depth=8` beats the `d` of MODEL_DIMS).
SUBTREES = {"MODEL_DIMS": "model", "TRAIN_CONFIG": "train", "DROP_CONFIG": "drop"}


def decode_dims(variable: str, values: dict[str, Any], config: DictConfig | None) -> CompactDims:
    """Decode a compact-string variable, then apply field overrides from its config sub-tree."""
    codec = CODECS[variable]
    dims = codec.decode(values[variable])
    if config is not None:
        subtree = config.get(SUBTREES[variable])
        if subtree:
            changes = {key: value for key, value in subtree.items() if value is not None}
            if changes:
                unknown = sorted(set(changes) - set(dims.as_dict()))
                if unknown:
                    raise ConfigError(
                        f"unknown setting {SUBTREES[variable]}.{unknown[0]}; valid fields are "
                        + ", ".join(f"{SUBTREES[variable]}.{name}" for name in dims.as_dict())
                    )
                try:
                    dims = dims.replace(**changes)
                except ConfigError as error:
                    settings = " ".join(f"{SUBTREES[variable]}.{key}={value}" for key, value in changes.items())
                    raise ConfigError(f"{error.message} (with {settings} from the command line)") from None
    return dims


@dataclass
class Step:
    """One operation call with its checked arguments and the variable values in effect for it."""

    op: Any
    """The OpSpec from the registry."""
    args: tuple[Any, ...]
    values: dict[str, Any]
    location: Location
    assigned: dict[str, Any] = field(default_factory=dict)
    """Variables the script assigned since the previous step."""
    explicit: frozenset[str] = frozenset()
    """Variables set by the script before this step or on the command line, rather than defaults."""
    note: str = ""
    """Reason for a step that the script does not call, e.g. the load_checkpoint() that resume=RUN_DIR adds."""

    def call_text(self) -> str:
        return f"{self.op.name}({', '.join(_format_arg(a) for a in self.args)})"


@dataclass
class Plan:
    """A whole checked program: steps in order, plus what the command line replaced."""

    scripts: tuple[Script, ...]
    steps: list[Step]
    initial_values: dict[str, Any]
    final_values: dict[str, Any]
    overridden_assignments: dict[str, list[Location]]
    """Variables set on the command line that the script also assigns, with those assignments."""
    uses_default_corpus: bool


def initial_values(config: DictConfig) -> dict[str, Any]:
    """Return every script variable as configured (defaults plus command-line overrides), typed."""
    values = {}
    for variable in VARIABLES:
        raw = config.get(variable.name, variable.default)
        try:
            values[variable.name] = variable.coerce(raw)
        except ConfigError as error:
            raise ConfigError(
                f"invalid value on the command line or in the config: {error.message}",
                hint=f"fix the value in {variable.name}=... on the command line"
                + (f", e.g. {variable.example.replace(' = ', '=')}" if variable.example else ""),
            ) from None
    return values


def build_plan(scripts: Iterable[Script], config: DictConfig, overridden: Iterable[str] = ()) -> Plan:
    """Check every statement of `scripts` (run in order) and return the plan.

    `overridden` names the variables set on the command line; their script assignments are skipped.
    Raises ScriptError (or another GptpipeError) pointing at the offending statement.
    """
    from gptpipe.runtime.registry import load_operations, unknown_operation
    from gptpipe.runtime.state import PlanContext

    from gptpipe.runtime.fabric_setup import check_settings

    operations = load_operations()
    check_settings(config)
    scripts = tuple(scripts)
    overridden_names = {lookup(name).name for name in overridden if name in BY_NAME}
    values = initial_values(config)
    start_values = dict(values)
    steps: list[Step] = []
    assigned: dict[str, Any] = {}
    overridden_assignments: dict[str, list[Location]] = {}
    model_location: Location | None = None
    data_ops: list[str] = []
    explicit: set[str] = set(overridden_names)

    for script in scripts:
        for statement in script.statements:
            if isinstance(statement, Assign):
                variable = _variable_for(statement)
                if variable.name in overridden_names:
                    overridden_assignments.setdefault(variable.name, []).append(statement.location)
                    # The command line wins, but a wrong value in the script is still an error. Strings
                    # with ${...} are not resolved, so the names they use need no value.
                    if not (statement.value.kind == "string" and "${" in str(statement.value.value)):
                        try:
                            _assigned_value(variable, statement.value, config, values)
                        except GptpipeError as error:
                            error.hint = (f"{error.hint}; " if error.hint else "") + (
                                f"the command line sets {variable.name}, but the script's assignment must "
                                "be valid too, because the script has to run without the override")
                            raise
                    continue
                if variable.name == "MODEL_DIMS" and model_location is not None:
                    raise ScriptError(
                        f"MODEL_DIMS is assigned after the model was created at {model_location}; "
                        "it would change nothing",
                        location=statement.location,
                        hint="move the assignment before create_model()",
                    )
                value = _assigned_value(variable, statement.value, config, values)
                values[variable.name] = value
                assigned[variable.name] = value
                explicit.add(variable.name)
                continue

            spec = operations.get(statement.name)
            if spec is None:
                raise unknown_operation(statement.name).with_location(statement.location)
            args = _call_arguments(spec, statement, config, values)
            if spec.needs_model and model_location is None:
                raise ScriptError(
                    f"{spec.name}() needs a model, but none is created or loaded before it",
                    location=statement.location,
                    hint="call create_model(...), load_model('file') or load_checkpoint(N) first",
                )
            step_values = dict(values)
            # A step before the script sets a compact string uses the default, so command-line fields
            # (model.depth=...) are checked only where the script has set the string, and at the last step.
            _check_dims(step_values, config, statement.location, explicit)
            if spec.check is not None:
                context = PlanContext(
                    values=step_values,
                    config=config,
                    location=statement.location,
                    model_exists=model_location is not None,
                    data_ops_before=tuple(data_ops),
                    explicit=frozenset(explicit),
                )
                try:
                    spec.check(context, *args)
                except GptpipeError as error:
                    raise error.with_location(statement.location) from None
            steps.append(Step(spec, args, step_values, statement.location, dict(assigned), frozenset(explicit)))
            assigned = {}
            if spec.creates_model:
                model_location = statement.location
            if spec.data_op:
                data_ops.append(spec.name)
    if steps:
        _check_dims(steps[-1].values, config, steps[-1].location)

    plan = Plan(
        scripts=scripts,
        steps=steps,
        initial_values=start_values,
        final_values=dict(values),
        overridden_assignments=overridden_assignments,
        uses_default_corpus=not data_ops,
    )
    from gptpipe.distributed.launch import check_launch

    check_launch(plan, config)
    return plan


def _variable_for(statement: Assign) -> Variable:
    try:
        return lookup(statement.name)
    except ConfigError as error:
        raise ScriptError(error.message, location=statement.location) from None


def _assigned_value(variable: Variable, node: Value, config: DictConfig, values: dict[str, Any]) -> Any:
    raw: Any
    if node.kind == "string":
        if variable.type is not str:
            raise ScriptError(
                f"{variable.name} expects {_kind_phrase(variable.type)}, got the string {node.text}",
                location=node.location,
                hint=f"write it without quotes, e.g. {variable.example or variable.name + ' = ' + repr(variable.default)}",
            )
        raw = resolve_interpolations(node, config, values)
    elif node.kind == "name":
        if variable.type is bool:
            raw = node.value
        else:
            hint = f"quote it: {variable.name} = '{node.value}'" if variable.type is str else None
            raise ScriptError(
                f"{variable.name} expects {_kind_phrase(variable.type)}, got the name {node.value}",
                location=node.location,
                hint=hint,
            )
    else:
        raw = node.value
        if variable.type is str:
            raise ScriptError(
                f"{variable.name} expects a quoted string, got {node.text}",
                location=node.location,
                hint=f"e.g. {variable.example}" if variable.example else None,
            )
    try:
        return variable.coerce(raw)
    except ConfigError as error:
        raise ScriptError(error.message, location=node.location) from None


def _kind_phrase(kind: type) -> str:
    return {
        int: "a whole number",
        float: "a number",
        str: "a quoted string",
        bool: "a boolean (true, false, yes, no, 1 or 0)",
    }[kind]


def _call_arguments(spec: Any, call: Call, config: DictConfig, values: dict[str, Any]) -> tuple[Any, ...]:
    low, high = spec.arity
    count = len(call.args)
    if count < low or (high is not None and count > high):
        if high is None:
            wanted = f"at least {low}"
        elif low == high:
            wanted = str(low)
        else:
            wanted = f"{low} to {high}"
        raise ScriptError(
            f"{spec.name}() takes {wanted} argument{'s' if wanted != '1' else ''}, got {count}",
            location=call.location,
            hint=f"usage: {spec.signature}",
        )
    args = []
    for index, node in enumerate(call.args):
        param = spec.params[index] if index < len(spec.params) else spec.variadic
        args.append(_convert_argument(spec, param, node, config, values))
    return tuple(args)


def _convert_argument(spec: Any, param: Any, node: Value, config: DictConfig, values: dict[str, Any]) -> Any:
    from gptpipe.runtime.registry import KIND_NAMES, Flag, InputDir, InputFile

    kind = param.kind
    expected = KIND_NAMES[kind]

    def mismatch() -> ScriptError:
        article = "an" if expected[0] in "aeiou" else "a"
        return ScriptError(
            f"argument {param.name} of {spec.name}() expects {article} {expected}, got {node.text}",
            location=node.location,
            hint=f"usage: {spec.signature}",
        )

    if kind is bool:
        if node.kind == "name" and node.value.lower() in ("true", "false", "yes", "no"):
            return node.value.lower() in ("true", "yes")
        if node.kind == "int" and node.value in (0, 1):
            return bool(node.value)
        raise mismatch()
    if kind is int:
        if node.kind != "int":
            raise mismatch()
        return node.value
    if kind is float:
        if node.kind not in ("int", "float"):
            raise mismatch()
        return float(node.value)
    if kind is Flag:
        if node.kind != "name":
            raise mismatch()
        if spec.flags and node.value not in spec.flags:
            from gptpipe.config.variables import suggest

            raise ScriptError(
                f"unknown flag {node.value} for {spec.name}()" + suggest(node.value, spec.flags).replace(
                    "known names are", "known flags are"
                ),
                location=node.location,
                hint="known flags: " + ", ".join(spec.flags),
            )
        return Flag(node.value)
    if node.kind != "string":
        raise mismatch()
    text = resolve_interpolations(node, config, values)
    if kind in (InputFile, InputDir):
        _check_path(Path(text), kind is InputFile, node.location, spec.name)
    return kind(text)


def _check_path(path: Path, want_file: bool, location: Location, op_name: str) -> None:
    what = "file" if want_file else "folder"
    if not path.exists():
        parent = path.parent
        parent_state = "exists" if parent.exists() else "does not exist either"
        raise ScriptError(
            f"{op_name}(): {what} not found: {path} (its folder {parent} {parent_state})",
            location=location,
            hint="relative paths are taken from the folder gptpipe was started in; check the path or set it "
            "on the command line through an interpolation such as '${data_dir}/...'",
        )
    if want_file and path.is_dir():
        raise ScriptError(f"{op_name}() expects a file, but {path} is a folder", location=location)
    if not want_file and not path.is_dir():
        raise ScriptError(f"{op_name}() expects a folder, but {path} is a file", location=location)


def resolve_interpolations(node: Value, config: DictConfig, values: dict[str, Any]) -> str:
    """Resolve `${...}` in a string value against the run's config and the current variable values."""
    text = str(node.value)
    if "${" not in text:
        return text
    context = OmegaConf.create(OmegaConf.to_container(config, resolve=False))
    OmegaConf.set_struct(context, False)
    for name, value in values.items():
        context[name] = value
    try:
        holder = OmegaConf.create({"value": text})
        holder._set_parent(context)
        resolved = holder.value
    except OmegaConfBaseException as error:
        first_line = str(error).splitlines()[0]
        offset = text.find("${")
        where = Location(node.location.file, node.location.line, node.location.col + 1 + offset,
                         node.location.source_line)
        key = _missing_key(first_line)
        raise ScriptError(
            f"interpolation in {node.text} does not resolve: {first_line}",
            location=where,
            hint=_interpolation_hint(key, context),
        ) from None
    return str(resolved)


def _interpolation_hint(key: str | None, context: DictConfig) -> str:
    """Say how to give the missing `${key}` a value: a known setting on the command line, or `+key=`."""
    if key is None:
        return "fix the name inside ${...}, or set it on the command line as +name=value"
    known = [name for name in context.keys() if isinstance(name, str) and name != "hydra"]
    if key in known:
        return f"set it on the command line, e.g. {key}=/path/to/file"
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if close:
        return f"did you mean ${{{close[0]}}}? A new name needs a + on the command line: +{key}=/path/to/file"
    return f"a name that is not a setting needs a + on the command line: +{key}=/path/to/file"


def _missing_key(message: str) -> str | None:
    """Return the config key an OmegaConf resolution error names, if it names one."""
    import re

    match = re.search(r"Missing mandatory value: (\S+)|Interpolation key '([^']+)' not found", message)
    if match is None:
        return None
    return match.group(1) or match.group(2)


def _check_dims(values: dict[str, Any], config: DictConfig, location: Location,
                names: Iterable[str] = tuple(CODECS)) -> None:
    """Check the compact strings among `names` as a step uses them, with their command-line fields applied."""
    for name in CODECS:
        if name not in names:
            continue
        try:
            decode_dims(name, values, config)
        except ConfigError as error:
            if config.get(SUBTREES[name]):
                # The string passed its own check when assigned, so a command-line field broke it.
                hint = f"change the {SUBTREES[name]}.* value on the command line"
                raise ConfigError(error.message, hint=hint) from None
            raise ScriptError(error.message, location=location) from None


def _format_arg(arg: Any) -> str:
    if isinstance(arg, str) and type(arg).__name__ == "Flag":
        return str(arg)
    if isinstance(arg, str):
        return repr(str(arg))
    return repr(arg)
