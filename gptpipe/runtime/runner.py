"""The step runner: executes a checked plan's operations one by one against a RunState."""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig

from gptpipe.config.plan import Plan
from gptpipe.errors import CheckpointError, GptpipeError
from gptpipe.runtime.state import RunState

log = logging.getLogger("gptpipe")


def execute_plan(plan: Plan, config: DictConfig, run_dir: Path, state: RunState | None = None) -> RunState:
    """Run every step in order; a GptpipeError is pointed at the step that raised it."""
    state = state or RunState(config=config, run_dir=run_dir)
    total = len(plan.steps)
    for number, step in enumerate(plan.steps, start=1):
        state.values = step.values
        state.location = step.location
        state.explicit = step.explicit
        if state.is_rank_zero:
            note = f" ({step.note})" if step.note else ""
            log.info("step %d/%d at %s: %s%s", number, total, step.location, step.call_text(), note)
        try:
            step.op.func(state, *step.args)
        except GptpipeError as error:
            if step.note:
                # The step is not in the script, so the location alone would point at the wrong call.
                error.message = f"{step.call_text()} ({step.note}): {error.message}"
                if isinstance(error, CheckpointError):
                    error.hint = (f"{error.hint}; " if error.hint else "") + (
                        "resume= loads the newest checkpoint, so move a damaged one out of the folder to "
                        "continue from the one before it")
            raise error.with_location(step.location) from None
    return state
