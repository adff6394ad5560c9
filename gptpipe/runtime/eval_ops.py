"""Evaluation operations: compute_exact_test(), compute_choice_score(), check_cpu_gpu_match()."""

from __future__ import annotations

import copy
import json
import logging
import math
import sys
from pathlib import Path
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch

from gptpipe.errors import ScriptError
from gptpipe.runtime.checkpoint import average_checkpoints, checkpoint_path, read_checkpoint
from gptpipe.runtime.checkpoint_ops import unwrap_model
from gptpipe.runtime.registry import InputFile, operation
from gptpipe.runtime.state import PlanContext, RunState

log = logging.getLogger("gptpipe.eval")

CURRENT_MODEL = -1
"""compute_exact_test()'s iteration argument for the run's current model."""
EXACT_TEST_SEED_OFFSET = 3
"""The exact test samples with seed + 3: training uses seed, its fixed evaluation batches seed + 1 and + 2."""
LN2 = math.log(2.0)


# ---------------------------------------------------------------- compute_exact_test


def _check_exact_test(context: PlanContext, iteration: int = CURRENT_MODEL, average_over: int = 0) -> None:
    if iteration == CURRENT_MODEL:
        if average_over:
            raise ScriptError(
                f"compute_exact_test(-1, {average_over}) averages checkpoints but names no iteration; "
                "pass the newest iteration to average, e.g. compute_exact_test(2000, 500)"
            )
        if not context.model_exists:
            raise ScriptError(
                "compute_exact_test() without arguments evaluates the current model, but none is created "
                "or loaded before it",
                hint="pass a checkpoint iteration, e.g. compute_exact_test(2000), or call create_model(), "
                "load_model('file') or load_checkpoint(N) first",
            )
        return
    if iteration < 0 or average_over < 0:
        raise ScriptError(
            f"compute_exact_test({iteration}, {average_over}): the iteration and the averaging span must be >= 0"
        )
    folder = context.values.get("CHECKPOINT_DIR") or ""
    saved_before = bool(folder) and Path(folder, f"iter_{iteration}.safetensors").exists()
    if not context.values.get("SAVE_MODEL") and not saved_before:
        where = f"CHECKPOINT_DIR {folder}" if folder else "the run's checkpoints/ folder"
        raise ScriptError(
            f"compute_exact_test({iteration}) reads iter_{iteration}.safetensors from {where}, which does not "
            "contain it, and with SAVE_MODEL false train() saves no checkpoints",
            hint="set SAVE_MODEL = true, or set CHECKPOINT_DIR to a folder that holds the checkpoint",
        )


def evaluated_model(state: RunState, iteration: int = CURRENT_MODEL, average_over: int = 0
                    ) -> tuple[torch.nn.Module, str]:
    """Return the model compute_exact_test() evaluates and a description of where it came from.

    CURRENT_MODEL (-1) is the run's model. Otherwise the checkpoint of `iteration` in
    CHECKPOINT_DIR, with weights averaged over every checkpoint in [iteration - average_over,
    iteration] when `average_over` is not 0. The run's model is never replaced.
    """
    from gptpipe.runtime.checkpoint_ops import _build_model

    if iteration == CURRENT_MODEL:
        if state.model is None:
            raise ScriptError("compute_exact_test() needs a model; create or load one first")
        origin = f", started from {state.model_origin}" if state.model_origin else ""
        return unwrap_model(state.model), f"the current model at iteration {state.iteration}{origin}"

    directory = state.checkpoint_dir
    newest = read_checkpoint(checkpoint_path(directory, iteration), with_optimizer=False)
    if not average_over:
        return _build_model(state, newest), f"checkpoint {newest.path}"

    averaged, used = average_checkpoints(directory, iteration, average_over)
    newest.model_state = averaged
    log.info("compute_exact_test(): averaging the weights of %d checkpoints (iterations %s) in %s",
             len(used), ", ".join(str(number) for number in used), directory)
    description = f"the average of {len(used)} checkpoints from iteration {used[0]} to {used[-1]} in {directory}"
    return _build_model(state, newest), description


@dataclass(frozen=True)
class ExactTestResult:
    """Mean test loss over random batches and its standard error."""

    loss: float
    """Mean loss in nats/token over the batches."""
    standard_error: float
    """Standard error of that mean: the sample standard deviation over batches / sqrt(batches)."""
    batches: int


def exact_test_loss(state: RunState, model: torch.nn.Module, batch_count: int) -> ExactTestResult:
    """Evaluate `model` on `batch_count` freshly sampled test batches of TRAIN_CONFIG's shape.

    With several ranks, rank r evaluates batches r, r + ranks, r + 2 * ranks and so on, and the
    ranks then share their per-batch losses, so every rank returns the result of all batches.
    """
    from gptpipe.data import FragmentSampler, streams_for
    from gptpipe.runtime.fabric_setup import get_fabric

    streams = streams_for(state)
    train_config = state.train_config()
    seed = int(state.config.get("seed", 1337)) + EXACT_TEST_SEED_OFFSET
    sampler = FragmentSampler(streams.test, train_config.fragment_len, seed, streams.doc_start_token, split="test",
                              doc_starts=streams.test_doc_starts)
    fabric = get_fabric(state)

    losses = np.zeros(batch_count, dtype=np.float64)
    own_batches = range(fabric.global_rank, batch_count, fabric.world_size)
    progress = _progress_bar(len(own_batches), "exact test") if fabric.global_rank == 0 else None
    with _evaluation_mode(model, fabric) as device:
        for index in own_batches:
            x, y = sampler.batch(train_config.batch, index)
            with fabric.autocast():
                result = model.evaluate(x.to(device), y.to(device))
            losses[index] = result["loss_sum"] / result["count"]
            if progress is not None:
                progress.update(1)
    if progress is not None:
        progress.close()
    if fabric.world_size > 1:
        # Each batch was evaluated by one rank and is 0 on the others, so the sum gathers them.
        shared = fabric.all_reduce(torch.from_numpy(losses).to(fabric.device), reduce_op="sum")
        losses = shared.cpu().numpy()

    error = float(losses.std(ddof=1) / math.sqrt(batch_count)) if batch_count > 1 else float("nan")
    return ExactTestResult(float(losses.mean()), error, batch_count)


class _evaluation_mode:
    """Put the model on the run's device and precision in eval mode, and restore its mode after."""

    def __init__(self, model: torch.nn.Module, fabric) -> None:
        self.model = model
        self.fabric = fabric
        self.was_training = model.training

    def __enter__(self) -> torch.device:
        self.model.to(self.fabric.device)
        self.fabric.strategy.precision.convert_module(self.model)
        self.model.eval()
        self.no_grad = torch.no_grad()
        self.no_grad.__enter__()
        return self.fabric.device

    def __exit__(self, *exc) -> None:
        self.no_grad.__exit__(*exc)
        self.model.train(self.was_training)


def _progress_bar(total: int, description: str):
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=description, unit="batch", dynamic_ncols=True, leave=False)


@operation(check=_check_exact_test)
def compute_exact_test(state: RunState, iteration: int = CURRENT_MODEL, average_over: int = 0) -> None:
    """Evaluate a checkpoint (or the current model) on EXACT_TEST_BATCHES fresh random test batches.

    Example: `compute_exact_test(2000, 500)` averages the weights of every checkpoint from
    iteration 1500 to 2000 in CHECKPOINT_DIR and evaluates the average. `compute_exact_test(2000)`
    evaluates iteration 2000 alone, and `compute_exact_test()` the current model. Batches have
    TRAIN_CONFIG's shape and are drawn with a seed that training's batches do not use. It logs the
    mean test loss with its standard error over batches (and bits per byte or character where
    one token is one of them) and writes exact_test.json to the run directory. A later call
    replaces that file, and exact_test.jsonl collects one line per call. The run's model
    is not replaced. With DEVICE_COUNT > 1 the ranks share the batches out among themselves.

    Errors, before any step runs: no model before a call without arguments; a checkpoint
    iteration with SAVE_MODEL false and no such file in CHECKPOINT_DIR.
    """
    from gptpipe.data import streams_for
    from gptpipe.runtime.metrics import write_json_atomic

    model, source = evaluated_model(state, iteration, average_over)
    batch_count = int(state.values.get("EXACT_TEST_BATCHES", 1000))
    result = exact_test_loss(state, model, batch_count)
    if not state.is_rank_zero:
        return

    train_config = state.train_config()
    unit = streams_for(state).token_unit
    bits = ""
    if unit is not None:
        bits = f" = {result.loss / LN2:.5f} ± {result.standard_error / LN2:.5f} bits/{unit}"
    log.info("exact test of %s: loss %.5f ± %.5f nats/token%s over %d batches of %d x %d tokens",
             source, result.loss, result.standard_error, bits, batch_count, train_config.batch,
             train_config.fragment_len)
    record = {
        "model": source,
        "iteration": iteration if iteration != CURRENT_MODEL else state.iteration,
        "average_over": average_over,
        "test_loss": result.loss,
        "standard_error": result.standard_error,
        "loss_unit": "nats/token",
        "token_unit": unit,
        "bits_per_unit": result.loss / LN2 if unit is not None else None,
        "batches": batch_count,
        "TRAIN_CONFIG": train_config.encode(),
    }
    write_json_atomic(state.run_dir / "exact_test.json", record)
    # exact_test.json keeps the last call only, so every call also adds a line here.
    with open(state.run_dir / "exact_test.jsonl", "a", encoding="utf-8") as history:
        history.write(json.dumps(record) + "\n")


# ---------------------------------------------------------------- compute_choice_score


@operation(needs_model=True)
def compute_choice_score(state: RunState, path: InputFile) -> None:
    """Score the model on a multiple-choice token file (llm.c's HellaSwag format) and log acc and acc_norm.

    Example: `compute_choice_score('hellaswag_val.bin')`. Each ending is scored by the model's
    log-likelihood of its tokens after the context: acc picks the highest total, acc_norm the
    highest mean per token. The file's token ids must come from the model's tokenizer. Writes
    choice_score.json to the run directory.
    """
    from gptpipe.runtime.choice import read_choice_file, score_choices
    from gptpipe.runtime.fabric_setup import get_fabric
    from gptpipe.runtime.metrics import write_json_atomic

    model = unwrap_model(state.model)
    examples = read_choice_file(path, model.vocab_size)
    fabric = get_fabric(state)

    def logits_of(tokens: torch.Tensor) -> torch.Tensor:
        with fabric.autocast():
            logits, _ = model(tokens)
        return logits

    with _evaluation_mode(model, fabric) as device:
        score = score_choices(logits_of, examples, max_len=model.max_len, device=device)
    if not state.is_rank_zero:
        return
    log.info("compute_choice_score(%s): %d examples, acc %.4f, acc_norm %.4f", path, score.examples,
             score.acc, score.acc_norm)
    write_json_atomic(state.run_dir / "choice_score.json", {
        "file": str(path),
        "examples": score.examples,
        "acc": score.acc,
        "acc_norm": score.acc_norm,
        "iteration": state.iteration,
    })


# ---------------------------------------------------------------- check_cpu_gpu_match

MATCH_MAX_PARAMETERS = 20_000_000
"""A current model up to this size is copied for check_cpu_gpu_match(); a larger one is not."""
MATCH_BATCH = (4, 64)
"""Rows and tokens of check_cpu_gpu_match()'s random batch."""
BASIS_POINT = 1e-4

# Expected RMS difference of the predicted probabilities, in basis points, by the compared
# path's arithmetic. float32 on a GPU differs from the CPU only in summation order (and TF32
# matrix products where enabled, 10 mantissa bits), far below 1 bp. bf16 keeps 8 mantissa bits
# (relative rounding 2^-8, about 0.4 %) and fp16 11 bits, so logits move by a few tenths of a
# percent and the probabilities of a small model by a few bp.
# NOTE: these tolerances are estimates from runs of the tiny check model on a CPU; a GPU may differ.
MATCH_TOLERANCE_BP = {"float32": 1.0, "bfloat16": 50.0, "float16": 10.0}


@dataclass(frozen=True)
class MatchReport:
    """check_cpu_gpu_match()'s figures."""

    path: str
    """The compared path, e.g. "cuda (NVIDIA H100), bf16-mixed" or "cpu with bf16 autocast (no GPU found)"."""
    arithmetic: str
    """float32, bfloat16 or float16: the lowest precision the compared path computes in."""
    forward_bp: float
    after_step_bp: float
    tolerance_bp: float

    @property
    def within_tolerance(self) -> bool:
        return self.forward_bp <= self.tolerance_bp and self.after_step_bp <= self.tolerance_bp


def _match_model(state: RunState) -> tuple[torch.nn.Module, str]:
    from gptpipe.config.dims import ModelDims
    from gptpipe.model import GPT

    if state.model is not None:
        current = unwrap_model(state.model)
        parameters = sum(p.numel() for p in current.parameters())
        if parameters <= MATCH_MAX_PARAMETERS:
            model = copy.deepcopy(current).to("cpu", torch.float32)
            return model, f"a copy of the current model ({parameters:,} parameters)"
    generator_state = torch.get_rng_state()
    torch.manual_seed(int(state.config.get("seed", 1337)))
    model = GPT(ModelDims(width=128, heads=1, depth=2, window=64), 256, max_len=MATCH_BATCH[1])
    # The output layer starts at zero (uniform predictions, nothing to compare), so give it weights.
    torch.nn.init.normal_(model.output.weight, std=1 / math.sqrt(model.dims.width))
    torch.set_rng_state(generator_state)
    return model, "a fresh GPT e128h1d2w64 with 256 tokens"


def _compared_path(state: RunState) -> tuple[torch.device, str, torch.dtype | None, str]:
    """Return the device, the precision setting, the autocast dtype (None: none) and a description."""
    from gptpipe.runtime.fabric_setup import resolve_precision

    if torch.cuda.is_available():
        precision = resolve_precision(str(state.config.get("precision", "auto")), "cuda")
        autocast = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16,
                    "bf16-true": torch.bfloat16, "16-true": torch.float16}.get(precision)
        return torch.device("cuda"), precision, autocast, f"cuda ({torch.cuda.get_device_name()}), {precision}"
    return torch.device("cpu"), "bf16-mixed", torch.bfloat16, "cpu with bf16 autocast (no GPU found)"


def _probabilities(model: torch.nn.Module, tokens: torch.Tensor, device: torch.device,
                   dtype: torch.dtype | None) -> torch.Tensor:
    context = torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()
    with torch.no_grad(), context:
        logits, _ = model(tokens.to(device))
    return torch.softmax(logits.float(), dim=-1).cpu()


def _train_one_step(model: torch.nn.Module, optimizer, tokens: torch.Tensor, targets: torch.Tensor,
                    device: torch.device, dtype: torch.dtype | None) -> None:
    context = torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()
    with context:
        _, loss = model(tokens.to(device), targets.to(device))
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def _rms_bp(reference: torch.Tensor, compared: torch.Tensor) -> float:
    return float(torch.sqrt(torch.mean((reference - compared) ** 2))) / BASIS_POINT


def cpu_gpu_match(state: RunState) -> MatchReport:
    """Compare a float32 CPU reference with the path training uses, before and after one optimizer step."""
    from gptpipe.optim import build_optimizer
    from gptpipe.runtime.checkpoint_ops import _optimizer_name

    reference, model_text = _match_model(state)
    device, precision, dtype, path_text = _compared_path(state)
    compared = copy.deepcopy(reference).to(device)
    if precision in ("bf16-true", "16-true"):
        compared = compared.to(dtype)

    generator = torch.Generator().manual_seed(int(state.config.get("seed", 1337)))
    rows, length = MATCH_BATCH
    length = min(length, reference.max_len)  # a model with learned positions has no more than max_len
    block = torch.randint(0, reference.vocab_size, (rows, length + 1), generator=generator)
    tokens, targets = block[:, :-1], block[:, 1:]

    forward_bp = _rms_bp(_probabilities(reference, tokens, torch.device("cpu"), None),
                         _probabilities(compared, tokens, device, dtype))

    # The same optimizer and batch in both paths, at DROP_CONFIG's peak rate (the warm-up would make it 0).
    name = _optimizer_name(state)
    drop = state.drop_config()
    optimizers = [build_optimizer(model, name, drop.lr, drop.reg) for model in (reference, compared)]
    for optimizer in optimizers:
        for group in optimizer.param_groups:
            group["lr"] = drop.lr * group.get("lr_scale", 1.0)
    reference.train()
    compared.train()
    _train_one_step(reference, optimizers[0], tokens, targets, torch.device("cpu"), None)
    _train_one_step(compared, optimizers[1], tokens, targets, device, dtype)
    after_step_bp = _rms_bp(_probabilities(reference, tokens, torch.device("cpu"), None),
                            _probabilities(compared, tokens, device, dtype))

    arithmetic = {torch.bfloat16: "bfloat16", torch.float16: "float16"}.get(dtype, "float32")
    log.info("check_cpu_gpu_match(): %s, batch %d x %d, optimizer %s at lr %g", model_text, rows, length, name,
             drop.lr)
    return MatchReport(path_text, arithmetic, forward_bp, after_step_bp, MATCH_TOLERANCE_BP[arithmetic])


@operation()
def check_cpu_gpu_match(state: RunState) -> None:
    """Compare the predictions of a float32 CPU reference with the device and precision training uses.

    Example: `check_cpu_gpu_match()`. It uses a copy of the current model, or a fresh tiny GPT
    when there is none or it is large, and one small random batch. It logs the RMS difference of
    the predicted probabilities in basis points (0.01 %) for the forward pass, and again after
    one identical optimizer step in both paths. Without a GPU it compares bf16 autocast on the
    CPU. It states the tolerance expected for that arithmetic and whether both figures are within it.
    """
    report = cpu_gpu_match(state)
    if not state.is_rank_zero:
        return
    verdict = "within" if report.within_tolerance else "OUTSIDE"
    log.info("check_cpu_gpu_match(): float32 cpu vs %s: RMS probability difference %.3f bp forward, %.3f bp "
             "after one optimizer step; %s the %.0f bp expected for %s arithmetic", report.path,
             report.forward_bp, report.after_step_bp, verdict, report.tolerance_bp, report.arithmetic)
