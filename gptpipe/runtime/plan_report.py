"""Human-readable plan (printed by dry_run=true, saved as plan.txt) and the override notice."""

from __future__ import annotations

import logging
from typing import Any

from omegaconf import DictConfig

from gptpipe.config.plan import SUBTREES, Plan, decode_dims

log = logging.getLogger("gptpipe")


def format_plan(plan: Plan, config: DictConfig) -> str:
    """Format the plan: every step with the variable values in effect for it, decoded dims and sizes."""
    script_names = " + ".join(s.path for s in plan.scripts)
    lines = [f"plan for {script_names}: {len(plan.steps)} step{'s' if len(plan.steps) != 1 else ''}"]
    for name, locations in plan.overridden_assignments.items():
        where = ", ".join(str(loc) for loc in locations)
        lines.append(f"command line sets {name}={plan.final_values[name]!r}, replacing the assignment at {where}")
    if plan.uses_default_corpus:
        lines.append("data: no data operation, so train() uses the built-in default corpus "
                     "(Python standard library sources, byte tokens)")
    loaded_from: str | None = None
    for number, step in enumerate(plan.steps, start=1):
        if step.op.creates_model:
            loaded_from = None if step.op.name == "create_model" else _loaded_model_text(step)
        lines.append("")
        note = f"  ({step.note})" if step.note else ""
        lines.append(f"step {number}  {step.location}  {step.call_text()}{note}")
        lines.append("  values: " + _values_text(step.values))
        lines.extend("  " + line for line in _dims_lines(step, config, loaded_from))
    return "\n".join(lines)


def _loaded_model_text(step) -> str:
    """Describe the model that load_model()/load_checkpoint() will read, from the file's metadata if it exists."""
    from gptpipe.errors import GptpipeError
    from gptpipe.runtime.checkpoint import read_checkpoint_metadata

    if step.op.name == "load_model":
        path = str(step.args[0])
    else:
        directory = step.values.get("CHECKPOINT_DIR") or "<run directory>/checkpoints"
        iteration = step.args[0] if step.args else -1
        name = "the newest checkpoint" if iteration == -1 else f"iter_{iteration}.safetensors"
        if iteration == -1 and step.values.get("CHECKPOINT_DIR"):
            from gptpipe.runtime.checkpoint import list_checkpoints

            saved = list_checkpoints(directory)
            if saved:
                name = f"the newest checkpoint, now {saved[-1][1].name}"
        return f"model: {name} in {directory} (its MODEL_DIMS and flags replace the script's)"
    try:
        dims = read_checkpoint_metadata(path).get("MODEL_DIMS", "unknown")
    except (GptpipeError, OSError):
        dims = "unknown until the file is read"
    return f"model: {path}, MODEL_DIMS {dims} from the file"


def _values_text(values: dict[str, Any]) -> str:
    return " ".join(f"{name}={value!r}" for name, value in values.items())


def _dims_lines(step, config: DictConfig, loaded_from: str | None) -> list[str]:
    values = step.values
    model = decode_dims("MODEL_DIMS", values, config)
    train = decode_dims("TRAIN_CONFIG", values, config)
    drop = decode_dims("DROP_CONFIG", values, config)
    lines = []
    trains = step.op.name in ("train", "net_train")
    if loaded_from is not None and (step.op.creates_model or trains):
        lines.append(loaded_from)
    elif step.op.creates_model or trains:
        lines.append(
            f"MODEL_DIMS {model.encode()}: width {model.width}, {model.heads} head(s) x 128, depth {model.depth}, "
            f"window {model.window} (local blocks {model.local_window}), feed-forward {model.ffn_width}; "
            f"{_millions(model.block_parameters())} parameters in the blocks, plus 2 x {model.width} per "
            "vocabulary token for embedding and output layer"
        )
    if trains:
        lines.append(
            f"TRAIN_CONFIG {train.encode()}: {train.batch} fragments x {train.fragment_len} tokens = "
            f"{train.tokens_per_batch} tokens per batch"
        )
        lines.append(
            f"DROP_CONFIG {drop.encode()}: {_dropout_text(drop)}, "
            f"lr {drop.lr:g}, warm-up {drop.warmup} iterations, weight decay {drop.reg:g}, "
            + (f"decay to 0 over the last {_count(values['MAX_ITERS'] / drop.tail)} iterations" if drop.tail
               else "no decay")
            + _budget_text(values, drop)
        )
    return lines


def _dropout_text(drop) -> str:
    if drop.keep_tokens == 1 and drop.keep_channels == 1:
        return "no dropout"
    return (f"keep {drop.keep_tokens * 100:.3g}% of input tokens and {drop.keep_channels * 100:.3g}% of "
            "state channels")


def _budget_text(values: dict, drop) -> str:
    budget = float(values.get("MAX_SECONDS", 0) or 0)
    if budget <= 0:
        return ""
    decay = ""
    if drop.tail:
        decay = ", and the decay then covers the whole budget" if drop.tail == 1 else \
            f", and the decay then covers its last {budget / drop.tail:g} s"
    return f"; MAX_SECONDS {budget:g}: training stops after {budget:g} s if MAX_ITERS is not reached first{decay}"


def _count(value: float) -> str:
    """Format an iteration count: whole numbers with thousands separators, fractions with 4 digits."""
    return f"{int(value):,}" if float(value).is_integer() else f"{value:,.4g}"


def _millions(count: int) -> str:
    return f"{count / 1e6:.2f}M" if count >= 1e5 else str(count)


def log_overrides(plan: Plan, config: DictConfig) -> None:
    """Log once per variable that a command-line value replaced the script's assignments, and each field override."""
    for name, locations in plan.overridden_assignments.items():
        where = ", ".join(str(loc) for loc in locations)
        log.info("command line sets %s=%r; it replaces the script's assignment at %s",
                 name, plan.final_values[name], where)
    for variable, subtree in SUBTREES.items():
        fields = config.get(subtree) or {}
        for field_name, value in fields.items():
            if value is not None:
                log.info("command line sets %s.%s=%s; it changes that field of %s wherever the script uses it",
                         subtree, field_name, value, variable)
