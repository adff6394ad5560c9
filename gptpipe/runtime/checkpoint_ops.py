"""Script operations on model files and checkpoints: load_model(), load_checkpoint(), reset_model_grad().

The trainer calls save_training_checkpoint() every EVAL_INTERVAL iterations and at the end of
train(). A checkpoint stores what a resumed run needs besides the weights: the optimizer state
and its name, the iteration (the learning-rate schedule is a pure function of it) and the random
generator states. Batches and dropout masks are drawn from (seed, iteration) alone, so no sampler
state is stored.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from gptpipe.config.dims import ModelDims
from gptpipe.errors import CheckpointError
from gptpipe.runtime.checkpoint import (
    Checkpoint,
    check_vocabulary,
    checkpoint_path,
    list_checkpoints,
    load_model_state,
    read_checkpoint,
    read_checkpoint_metadata,
    save_checkpoint,
)
from gptpipe.runtime.registry import InputFile, operation
from gptpipe.runtime.state import PlanContext, RunState

log = logging.getLogger("gptpipe")

NEWEST = -1
"""load_checkpoint()'s iteration argument for the newest checkpoint in CHECKPOINT_DIR."""
COMPILED_PREFIX = "_orig_mod."
"""torch.compile's wrapper puts this before every state_dict name of the module it wraps."""


# ---------------------------------------------------------------- saving


def unwrap_model(model: Any) -> torch.nn.Module:
    """Return the GPT inside Fabric's wrapper and torch.compile's wrapper, in either order."""
    while True:
        if hasattr(model, "_forward_module"):  # lightning_fabric's _FabricModule
            model = model.module
        elif hasattr(model, "_orig_mod"):  # torch.compile's OptimizedModule
            model = model._orig_mod
        elif isinstance(model, torch.nn.parallel.DistributedDataParallel):
            model = model.module
        else:
            return model


def model_metadata(state: RunState, model: torch.nn.Module) -> dict[str, Any]:
    """Describe `model` and its vocabulary so load_model() can rebuild it and check it against data."""
    from gptpipe.data import streams_for

    streams = streams_for(state)
    return {
        "MODEL_DIMS": model.dims.encode(),
        "flags": list(state.model_flags),
        "max_len": int(model.max_len),
        "vocab_size": int(model.vocab_size),
        "special_token_ids": streams.special_token_ids(),
        "tokenizer": streams.tokenizer.to_metadata(),
    }


def save_training_checkpoint(state: RunState, iteration: int) -> Path | None:
    """Write `<CHECKPOINT_DIR>/iter_<iteration>.safetensors` for resuming, and return its path.

    Only rank 0 writes, and other ranks return None. KEEP_MODEL_COUNT (0: keep all) deletes
    all but the newest checkpoints after the write.
    """
    if not state.is_rank_zero:
        return None
    model = unwrap_model(state.model)
    model_state = {_strip_compiled_prefix(name): tensor for name, tensor in model.state_dict().items()}
    drop = state.drop_config()
    metadata = model_metadata(state, model)
    metadata.update({
        "iteration": int(iteration),
        "optimizer": _optimizer_name(state),
        "schedule": {"iteration": int(iteration), "TRAIN_CONFIG": state.train_config().encode(),
                     "DROP_CONFIG": drop.encode(),
                     "MAX_ITERS": int(state.values["MAX_ITERS"]),
                     "MAX_SECONDS": float(state.values.get("MAX_SECONDS", 0) or 0),
                     "train_seconds": round(float(state.train_seconds), 3)},
        "values": dict(state.values),
        "config": OmegaConf.to_container(state.config, resolve=False),
    })
    return save_checkpoint(
        state.checkpoint_dir,
        iteration,
        model_state,
        state.optimizer,
        extra_metadata=metadata,
        rng=True,
        keep_count=int(state.values.get("KEEP_MODEL_COUNT", 0) or 0),
    )


def _strip_compiled_prefix(name: str) -> str:
    return name[len(COMPILED_PREFIX):] if name.startswith(COMPILED_PREFIX) else name


def _optimizer_name(state: RunState) -> str:
    from gptpipe.optim import DEFAULT_OPTIMIZER

    name = state.optimizer_name or str(state.config.get("optimizer", "default"))
    return DEFAULT_OPTIMIZER if name == "default" else name


# ---------------------------------------------------------------- rebuilding a model


def _saved_dims(metadata: dict[str, Any], path: Path) -> ModelDims:
    text = metadata.get("MODEL_DIMS")
    if not text:
        raise CheckpointError(
            f"{path} records no MODEL_DIMS, so its model cannot be rebuilt; save it with gptpipe's "
            "train() (SAVE_MODEL = true)"
        )
    return ModelDims.decode(text)


def check_dims_agree(script_dims: ModelDims, saved_dims: ModelDims, path: Path | str, explicit: bool) -> None:
    """Raise CheckpointError when the script or command line set MODEL_DIMS to something other than the file's.

    `explicit` tells whether MODEL_DIMS was set at all. Its default never conflicts with a file.
    """
    if not explicit or script_dims == saved_dims:
        return
    raise CheckpointError(
        f"MODEL_DIMS {script_dims.encode()} disagrees with the model in {path}, which has MODEL_DIMS "
        f"{saved_dims.encode()}; the file defines the model, so remove the MODEL_DIMS assignment from the "
        f"script, or MODEL_DIMS=... and model.* from the command line, or set MODEL_DIMS to '{saved_dims.encode()}'"
    )


def _build_model(state: RunState, checkpoint: Checkpoint) -> torch.nn.Module:
    """Rebuild the GPT a file describes, check it against the script and the data, and load its weights."""
    from gptpipe.data import streams_for
    from gptpipe.model import GPT

    metadata = checkpoint.metadata
    dims = _saved_dims(metadata, checkpoint.path)
    check_dims_agree(state.model_dims(), dims, checkpoint.path, "MODEL_DIMS" in state.explicit)
    streams = streams_for(state)
    check_vocabulary(metadata, streams.vocab_size, streams.special_token_ids())

    vocab_size = int(metadata.get("vocab_size") or streams.vocab_size)
    max_len = int(metadata.get("max_len") or state.train_config().fragment_len)
    model = GPT(dims, vocab_size, flags=tuple(metadata.get("flags") or ()), max_len=max_len)
    load_model_state(model, checkpoint.model_state, checkpoint.path)
    return model


def _check_file_dims(context: PlanContext, path: str) -> None:
    """Compare the script's MODEL_DIMS with the file's before any work, when the file is readable."""
    metadata = read_checkpoint_metadata(path)
    check_dims_agree(context.model_dims(), _saved_dims(metadata, Path(path)), path, "MODEL_DIMS" in context.explicit)


@operation(creates_model=True, check=_check_file_dims)
def load_model(state: RunState, path: InputFile) -> None:
    """Load a model saved by gptpipe; its MODEL_DIMS, flags and vocabulary come from the file.

    Example: `load_model('outputs/2024-05-01/12-00-00/checkpoints/iter_2000.safetensors')`.
    Training that follows starts at iteration 0 with a fresh optimizer. The data's vocabulary
    must match the file's, so define the data (or leave the default corpus) the model was trained
    with. A MODEL_DIMS set in the script must match the file. gptpipe never loads pickle files
    (torch.save), because unpickling can run arbitrary code.

    Errors: file not found; a pickle or other non-safetensors file; a truncated or corrupt file
    (checksums are verified); a MODEL_DIMS that disagrees with the file; a vocabulary mismatch
    between the model and the data.
    """
    checkpoint = read_checkpoint(path, with_optimizer=False)
    model = _build_model(state, checkpoint)
    state.model = model
    state.model_flags = tuple(model.flags)
    state.optimizer = None
    state.resume = None
    state.iteration = 0
    state.model_origin = str(path)
    if state.is_rank_zero:
        log.info("loaded model %s (MODEL_DIMS %s, flags %s, vocabulary %d, saved at iteration %d)",
                 path, model.dims.encode(), ", ".join(state.model_flags) or "none", model.vocab_size,
                 checkpoint.iteration)


# ---------------------------------------------------------------- resuming


def _check_load_checkpoint(context: PlanContext, iteration: int = NEWEST) -> None:
    if iteration < NEWEST:
        raise CheckpointError(
            f"load_checkpoint({iteration}): the iteration must be >= 0, or -1 for the newest checkpoint"
        )
    # A train() earlier in the plan may still write the checkpoint, and train() needs a model,
    # so the folder is checked only when no model exists yet.
    configured = context.values.get("CHECKPOINT_DIR") or ""
    if context.model_exists or not configured:
        return
    directory = Path(configured)
    if not directory.is_dir():
        return
    saved = [number for number, _ in list_checkpoints(directory)]
    if iteration == NEWEST and not saved:
        raise CheckpointError(
            f"load_checkpoint(): CHECKPOINT_DIR {directory} contains no checkpoints (iter_<N>.safetensors); "
            "point CHECKPOINT_DIR at the checkpoints/ folder of the run to resume"
        )
    if iteration != NEWEST and iteration not in saved:
        listing = ", ".join(str(number) for number in saved) or "none"
        raise CheckpointError(
            f"load_checkpoint({iteration}): {checkpoint_path(directory, iteration)} not found; CHECKPOINT_DIR "
            f"{directory} contains checkpoints for iterations: {listing}"
        )


def find_checkpoint(directory: Path, iteration: int) -> Path:
    """Return the checkpoint of `iteration` in `directory`, or the newest one for NEWEST (-1)."""
    if iteration != NEWEST:
        return checkpoint_path(directory, iteration)
    saved = list_checkpoints(directory)
    if not saved:
        where = f"{directory} contains no checkpoints" if directory.is_dir() else f"folder {directory} does not exist"
        raise CheckpointError(
            f"load_checkpoint(): no checkpoint to resume from: {where}; set CHECKPOINT_DIR to the "
            "checkpoints/ folder of the run to resume"
        )
    return saved[-1][1]


@operation(creates_model=True, check=_check_load_checkpoint)
def load_checkpoint(state: RunState, iteration: int = NEWEST) -> None:
    """Resume from the checkpoint of an iteration in CHECKPOINT_DIR: model, optimizer, schedule and random state.

    Example: `load_checkpoint(2000)`. The train() that follows continues from that iteration to
    MAX_ITERS and matches a run that was never interrupted. Without an argument (or with -1) it
    loads the newest checkpoint. Set CHECKPOINT_DIR to the interrupted run's checkpoints/ folder;
    the resumed run writes its own checkpoints there too. To continue a run with its own script
    and values, the command line `gptpipe resume=RUN_DIR` does this without a new script: it adds
    load_checkpoint() just before the script's first train() or net_train().

    Errors: no iter_N in CHECKPOINT_DIR (the message lists the iterations it contains, and the
    plan checks this before any work when the folder exists and no model was created before);
    a truncated, corrupt or pickled file; a vocabulary mismatch between the model and the data.
    """
    from gptpipe.optim import build_optimizer

    path = find_checkpoint(state.checkpoint_dir, iteration)
    checkpoint = read_checkpoint(path)
    model = _build_model(state, checkpoint)
    saved_name = checkpoint.metadata.get("optimizer") or _optimizer_name(state)
    if checkpoint.optimizer_state is None:
        raise CheckpointError(
            f"{path} contains no optimizer state, so training cannot resume from it exactly; "
            "use load_model() to start a new training from its weights"
        )
    configured = _optimizer_name(state)
    if configured != saved_name and str(state.config.get("optimizer", "default")) != "default":
        log.warning("load_checkpoint(): optimizer=%s is set, but %s was saved with %s; resuming with %s",
                    configured, path, saved_name, saved_name)
    drop = state.drop_config()
    optimizer = build_optimizer(model, saved_name, drop.lr, drop.reg)

    state.model = model
    state.model_flags = tuple(model.flags)
    state.model_origin = None
    state.optimizer = optimizer
    state.optimizer_name = saved_name
    # Trainer._setup_model_and_optimizer loads the optimizer state once the model is on its device.
    state.resume = {"optimizer": checkpoint.optimizer_state, "optimizer_name": saved_name}
    state.iteration = checkpoint.iteration
    state.train_seconds = float((checkpoint.metadata.get("schedule") or {}).get("train_seconds", 0.0))
    if checkpoint.rng_state is not None:
        checkpoint.restore_rng()
    _warn_schedule_change(state, checkpoint)
    if state.is_rank_zero:
        log.info("resuming from %s: iteration %d, MODEL_DIMS %s, optimizer %s", path, checkpoint.iteration,
                 model.dims.encode(), saved_name)


def _warn_schedule_change(state: RunState, checkpoint: Checkpoint) -> None:
    saved = checkpoint.metadata.get("schedule") or {}
    if not state.is_rank_zero:
        return
    now = {"DROP_CONFIG": state.drop_config().encode(), "MAX_ITERS": int(state.values["MAX_ITERS"]),
           "MAX_SECONDS": float(state.values.get("MAX_SECONDS", 0) or 0)}
    for name, value in now.items():
        if name in saved and saved[name] != value:
            log.warning("load_checkpoint(): %s was %s when %s was saved and is %s now; the learning-rate "
                        "schedule continues with the new value", name, saved[name], checkpoint.path, value)
    batches = state.train_config().encode()
    if "TRAIN_CONFIG" in saved and saved["TRAIN_CONFIG"] != batches:
        log.warning("load_checkpoint(): TRAIN_CONFIG was %s when %s was saved and is %s now; training goes on "
                    "with the new batches, so it will not match the run it continues", saved["TRAIN_CONFIG"],
                    checkpoint.path, batches)


@operation(needs_model=True)
def reset_model_grad(state: RunState) -> None:
    """Clear the optimizer's accumulated statistics (moments); the next train() builds a fresh optimizer.

    Example: `reset_model_grad()`, before training on with another TRAIN_CONFIG. The optimizer
    kind stays the same and the model weights and iteration are kept.
    """
    name = _optimizer_name(state)
    state.optimizer = None
    state.resume = {"optimizer_name": name}
    if state.is_rank_zero:
        log.info("reset_model_grad(): optimizer %s starts fresh at the next train()", name)
