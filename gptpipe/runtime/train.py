"""The train() operation: the training loop, evaluations and run outputs."""

from __future__ import annotations

import logging
import math
import signal
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed

from gptpipe.errors import ConfigError, TrainingStopped
from gptpipe.runtime.registry import operation
from gptpipe.runtime.state import PlanContext, RunState

log = logging.getLogger("gptpipe")

LN2 = math.log(2.0)
DUPLICATE_INTERRUPT_S = 1.0
"""A second Ctrl-C this soon after the first counts as the same one (a copy forwarded to a rank process)."""


def check_train(context: PlanContext) -> None:
    train_config = context.train_config()
    devices = int(context.values["DEVICE_COUNT"])
    if train_config.batch % devices != 0:
        raise ConfigError(
            f"TRAIN_CONFIG b{train_config.batch} is not divisible by DEVICE_COUNT {devices}; b is the global batch "
            f"and each device takes b / DEVICE_COUNT fragments",
            hint=f"use a batch that is a multiple of {devices}, e.g. b{max(devices, train_config.batch // devices * devices)}",
        )
    limit = int(context.config.get("max_tokens_per_step", 0) or 0)
    if 0 < limit < train_config.fragment_len:
        raise ConfigError(
            f"max_tokens_per_step={limit} is smaller than one fragment of {train_config.fragment_len} tokens",
            hint="raise max_tokens_per_step to at least the fragment length f, or set it to 0 for no limit",
        )


@operation(needs_model=True, check=check_train)
def train(state: RunState) -> None:
    """Train the model up to MAX_ITERS iterations with TRAIN_CONFIG's batch and DROP_CONFIG's schedule.

    Every EVAL_INTERVAL iterations and at the end, it logs train and test loss on fixed evaluation
    batches and writes metrics.csv, loss.png and, with SAVE_MODEL, a checkpoint. At the end it also
    writes summary.json. After load_checkpoint(N) it continues from iteration N. With MAX_SECONDS
    it also stops when that many seconds of training have passed, and the learning-rate tail
    follows the budget when the budget ends first.
    """
    Trainer(state).run()


@dataclass
class Evaluation:
    iteration: int
    train_loss: float
    test_loss: float
    test_accuracy: float | None


class Trainer:
    """One call of train(): sets up Fabric, data and optimizer, then runs the loop."""

    def __init__(self, state: RunState):
        from gptpipe.data import FragmentSampler, eval_batches, streams_for
        from gptpipe.runtime.fabric_setup import get_fabric

        self.state = state
        self.values = state.values
        self.seed = int(state.config.get("seed", 1337))
        self.model_dims = state.model_dims()
        self.train_config = state.train_config()
        self.drop = state.drop_config()
        self.max_iters = int(self.values["MAX_ITERS"])
        self.max_seconds = float(self.values.get("MAX_SECONDS", 0) or 0)
        self.elapsed = 0.0
        """Seconds of training so far (all train() calls of the run), the same on every rank."""
        self._clock_base = 0.0
        self.eval_interval = int(self.values["EVAL_INTERVAL"])
        self.fabric = get_fabric(state)
        self.rank = self.fabric.global_rank
        self.world_size = self.fabric.world_size
        self.local_batch = self.train_config.batch // self.world_size
        self.streams = streams_for(state)
        fragment_len = self.train_config.fragment_len
        streams = self.streams
        self.sampler = FragmentSampler(streams.train, fragment_len, self.seed, streams.doc_start_token,
                                       doc_starts=streams.train_doc_starts)
        eval_count = int(self.values["EVAL_ITERS"])
        self.eval_train = eval_batches(streams.train, eval_count, self.train_config.batch, fragment_len,
                                       self.seed + 1, doc_start_token=streams.doc_start_token, split="train",
                                       doc_starts=streams.train_doc_starts)
        self.eval_test = eval_batches(streams.test, eval_count, self.train_config.batch, fragment_len,
                                      self.seed + 2, doc_start_token=streams.doc_start_token,
                                      doc_starts=streams.test_doc_starts)
        self.micro_batch = self._micro_batch_rows()
        self.stop_requested = False

    # -- setup -----------------------------------------------------------------------------

    def _micro_batch_rows(self) -> int:
        limit = int(self.state.config.get("max_tokens_per_step", 0) or 0)
        if limit <= 0:
            return self.local_batch
        rows = max(1, limit // self.train_config.fragment_len)
        return min(rows, self.local_batch)

    def _setup_model_and_optimizer(self) -> tuple[Any, Any]:
        from gptpipe.optim import DEFAULT_OPTIMIZER, build_optimizer

        state = self.state
        resume = state.resume or {}
        state.resume = None  # consumed here, so a second train() does not load it again
        name = resume.get("optimizer_name") or str(state.config.get("optimizer", "default"))
        if name == "default":
            name = DEFAULT_OPTIMIZER
        model = state.model
        # After load_model() the model's own shape wins over the MODEL_DIMS variable.
        self.model_dims = model.dims
        if state.optimizer is None:
            state.optimizer = build_optimizer(model, name, self.drop.lr, self.drop.reg)
            self.optimizer_name = name
        else:
            self.optimizer_name = state.optimizer_name or name
        state.optimizer_name = self.optimizer_name
        if bool(state.config.get("compile", False)):
            model = torch.compile(model)
        fabric_model, fabric_optimizer = self.fabric.setup(model, state.optimizer)
        # Loaded after setup, so the saved moments land on the device the parameters moved to.
        if resume.get("optimizer") is not None:
            state.optimizer.load_state_dict(resume["optimizer"])
        return fabric_model, fabric_optimizer

    # -- loop ------------------------------------------------------------------------------

    def run(self) -> None:
        from gptpipe.runtime.metrics import MetricsWriter

        state = self.state
        model, optimizer = self._setup_model_and_optimizer()
        self.model = model
        start = state.iteration
        if start >= self.max_iters:
            log.info("train(): already at iteration %d of MAX_ITERS %d; nothing to do", start, self.max_iters)
            self._write_empty_summary("MAX_ITERS")
            return
        if 0 < self.max_seconds <= state.train_seconds:
            log.info("train(): %.1f s of training already spent, MAX_SECONDS is %g; nothing to do",
                     state.train_seconds, self.max_seconds)
            self._write_empty_summary("MAX_SECONDS")
            return
        writer = MetricsWriter(state.run_dir, self._loss_unit()) if state.is_rank_zero else None
        self._log_start(start)
        self._warn_about_later_checkpoints(start)
        self._warn_about_long_warmup(start)
        started = time.perf_counter()
        self.elapsed = state.train_seconds
        self._clock_base = started - state.train_seconds
        stopped_by = "MAX_ITERS"
        train_seconds = 0.0
        tokens_since_eval = 0
        seconds_since_eval = 0.0
        last_eval: Evaluation | None = None
        iteration = start
        progress = self._progress_bar(start)
        status = "completed"
        try:
            with self._stop_on_interrupt():
                while iteration < self.max_iters:
                    if iteration % self.eval_interval == 0 and iteration > start or iteration == start == 0:
                        last_eval = self._evaluate_and_record(iteration, started, writer, tokens_since_eval,
                                                              seconds_since_eval)
                        tokens_since_eval, seconds_since_eval = 0, 0.0
                    step_started = time.perf_counter()
                    learning_rate = self._set_learning_rate(optimizer, iteration)
                    loss = self._train_step(model, optimizer, iteration)
                    step_seconds = time.perf_counter() - step_started
                    train_seconds += step_seconds
                    seconds_since_eval += step_seconds
                    tokens_since_eval += self.train_config.tokens_per_batch
                    if not math.isfinite(loss):
                        status = f"stopped: loss {loss} at iteration {iteration}"
                        raise TrainingStopped(f"training stopped: the loss is {loss} at iteration {iteration}",
                                              hint=self._divergence_hint())
                    iteration += 1
                    state.iteration = iteration
                    if writer is not None and self.values.get("PRINT_ITER_TRAIN_ERR"):
                        writer.log_iteration(iteration, time.perf_counter() - started, loss, learning_rate)
                        if progress is None:
                            log.info("iteration %d: train loss %.4f", iteration, loss)
                    if progress is not None:
                        progress.update(1)
                        progress.set_postfix(loss=f"{loss:.3f}",
                                             tok_s=f"{self.train_config.tokens_per_batch / step_seconds:,.0f}")
                    if self._agree_on_stop_and_time():
                        status = f"interrupted at iteration {iteration}"
                        break
                    if 0 < self.max_seconds <= self.elapsed and iteration < self.max_iters:
                        stopped_by = "MAX_SECONDS"
                        if state.is_rank_zero:
                            log.info("train(): MAX_SECONDS budget of %g s spent at iteration %d (MAX_ITERS %d)",
                                     self.max_seconds, iteration, self.max_iters)
                        break
                if status == "completed" or self.stop_requested:
                    last_eval = self._evaluate_and_record(iteration, started, writer, tokens_since_eval,
                                                          seconds_since_eval)
        except KeyboardInterrupt:
            # A second Ctrl-C stops at once, in the middle of a step or an evaluation.
            if status == "completed":
                status = f"interrupted at iteration {iteration}"
            self._log_newest_checkpoint(iteration)
            raise
        except BaseException as error:
            if status == "completed":
                status = f"failed at iteration {iteration}: {type(error).__name__}"
            raise
        finally:
            state.train_seconds = self._clock()
            if progress is not None:
                progress.close()
            if writer is not None:
                self._write_summary(status, stopped_by if status == "completed" else None, iteration - start, started,
                                    train_seconds, last_eval)
                writer.close()
        if self.stop_requested:
            self._log_resume_hint(iteration)
            raise KeyboardInterrupt

    def _clock(self) -> float:
        """This rank's seconds of training so far, earlier train() calls and resumed runs included."""
        return time.perf_counter() - self._clock_base

    def _agree_on_stop_and_time(self) -> bool:
        """Return True when any rank was interrupted, and set `elapsed` to the largest clock of all ranks.

        Both are agreed so that all ranks stop at the same iteration and use the same learning rate.
        """
        stop = self.stop_requested
        elapsed = self._clock()
        if self.world_size > 1:
            agreed = torch.tensor([float(stop), elapsed], dtype=torch.float64, device=self.fabric.device)
            agreed = self.fabric.all_reduce(agreed, reduce_op=torch.distributed.ReduceOp.MAX).cpu()
            stop, elapsed = bool(agreed[0] > 0), float(agreed[1])
        self.elapsed = elapsed
        if stop:
            self.stop_requested = True
        return stop

    def _progress(self, iteration: int) -> float:
        """Share of the run done: the larger of the iteration share and the spent share of MAX_SECONDS."""
        done = iteration / self.max_iters if self.max_iters > 0 else 1.0
        if self.max_seconds > 0:
            done = max(done, self.elapsed / self.max_seconds)
        return min(1.0, done)

    def _train_step(self, model, optimizer, iteration: int) -> float:
        from gptpipe.model import drop_tokens, sample_channel_mask

        x, y = self.sampler.batch(self.train_config.batch, iteration, self.rank, self.world_size)
        device = self.fabric.device
        x, y = x.to(device), y.to(device)
        # Dropout draws depend only on (seed, iteration, rank), so a resumed run repeats them exactly.
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + iteration * 64 + self.rank)
        x = drop_tokens(x, self.drop.keep_tokens, self.streams.unknown_token, generator)
        shared = torch.Generator().manual_seed(self.seed * 7_919 + iteration)
        channel_mask = sample_channel_mask(self.model_dims.width, self.drop.keep_channels, shared, device)

        rows = x.shape[0]
        total_loss = torch.zeros((), device=device)
        for begin in range(0, rows, self.micro_batch):
            end = min(rows, begin + self.micro_batch)
            last = end == rows
            with self.fabric.no_backward_sync(model, enabled=not last):
                _, loss = model(x[begin:end], y[begin:end], channel_mask)
                scaled = loss * ((end - begin) / rows)
                self.fabric.backward(scaled)
            total_loss += scaled.detach()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if self.world_size > 1:
            total_loss = self.fabric.all_reduce(total_loss, reduce_op="mean")
        return float(total_loss)

    def _set_learning_rate(self, optimizer, iteration: int) -> float:
        from gptpipe.optim import learning_rate

        rate = learning_rate(iteration, self.drop, self.max_iters, self._progress(iteration))
        for group in optimizer.param_groups:
            group["lr"] = rate * group.get("lr_scale", 1.0)
        return rate

    # -- evaluation ------------------------------------------------------------------------

    @torch.no_grad()
    def evaluate(self) -> Evaluation:
        """Mean loss over the fixed evaluation batches, exact over ranks (sums are all-reduced)."""
        self.model.eval()
        try:
            train_sums = self._loss_sums(self.eval_train)
            test_sums = self._loss_sums(self.eval_test)
        finally:
            self.model.train()
        accuracy = None
        if test_sums[2] >= 0:
            accuracy = test_sums[2] / test_sums[1]
        return Evaluation(self.state.iteration, train_sums[0] / train_sums[1], test_sums[0] / test_sums[1], accuracy)

    def _loss_sums(self, batches) -> tuple[float, float, float]:
        module = self._plain_model()
        device = self.fabric.device
        share = slice(self.rank * self.local_batch, (self.rank + 1) * self.local_batch)
        sums = torch.zeros(3, dtype=torch.float64)
        for x, y in batches:
            with self.fabric.autocast():
                result = module.evaluate(x[share].to(device), y[share].to(device))
            sums[0] += result["loss_sum"]
            sums[1] += result["count"]
            sums[2] += result.get("correct", -1)
        if self.world_size > 1:
            sums = self.fabric.all_reduce(sums.to(device), reduce_op="sum").cpu()
        return float(sums[0]), float(sums[1]), float(sums[2])

    def _evaluate_and_record(self, iteration, started, writer, tokens, seconds) -> Evaluation:
        result = self.evaluate()
        elapsed = time.perf_counter() - started
        tokens_per_s = tokens / seconds if seconds > 0 else None
        if self.state.is_rank_zero:
            self._log_evaluation(iteration, elapsed, result, tokens_per_s)
            if writer is not None:
                writer.log_evaluation({
                    "iteration": iteration, "elapsed_s": round(elapsed, 3), "train_loss": result.train_loss,
                    "test_loss": result.test_loss, "test_accuracy": result.test_accuracy,
                    "learning_rate": self._learning_rate_at(iteration), "tokens_per_s": round(tokens_per_s) if tokens_per_s else None,
                })
        self.state.train_seconds = self._clock()
        self._save_checkpoint(iteration)
        return result

    def _save_checkpoint(self, iteration: int) -> None:
        if not self.values.get("SAVE_MODEL") or iteration == 0:
            return
        from gptpipe.runtime.checkpoint_ops import save_training_checkpoint

        save_training_checkpoint(self.state, iteration)

    def _divergence_hint(self) -> str:
        """Say what to change after a non-finite loss, and whether a checkpoint from before it exists."""
        hint = "lower the learning rate (DROP_CONFIG lr) or lengthen the warm-up (slow)"
        if self.optimizer_name != "adamw":
            hint += ", or try optimizer=adamw"
        from gptpipe.runtime.checkpoint import list_checkpoints

        saved = list_checkpoints(self.state.checkpoint_dir) if self.values.get("SAVE_MODEL") else []
        if saved:
            hint += f"; the last checkpoint before it is {saved[-1][1]}"
        return hint

    def _warn_about_long_warmup(self, start: int) -> None:
        """Warn when MAX_ITERS ends training before the warm-up reaches the peak learning rate.

        A run that continues from a checkpoint (`start` > 0) was warned when it began, and changing
        the warm-up now would break its match with a run that was never stopped.
        """
        warmup = self.drop.warmup
        if not self.state.is_rank_zero or self.max_seconds > 0 or warmup <= self.max_iters or start > 0:
            return
        log.warning("the warm-up (slow%d in DROP_CONFIG) is longer than MAX_ITERS %d, so the learning rate "
                    "never reaches lr %g; shorten it, e.g. slow%d", warmup, self.max_iters, self.drop.lr,
                    max(1, self.max_iters // 10))

    def _warn_about_later_checkpoints(self, start: int) -> None:
        """Warn when CHECKPOINT_DIR has checkpoints past `start`, which this run would overwrite."""
        if not self.state.is_rank_zero or not self.values.get("SAVE_MODEL"):
            return
        from gptpipe.runtime.checkpoint import list_checkpoints

        later = [iteration for iteration, _ in list_checkpoints(self.state.checkpoint_dir) if iteration > start]
        if later:
            listed = ", ".join(str(iteration) for iteration in later[:5]) + (", ..." if len(later) > 5 else "")
            log.warning("CHECKPOINT_DIR %s already has checkpoints past iteration %d (%s), from another run or "
                        "an earlier part of this one; this run overwrites the ones it reaches. Point "
                        "CHECKPOINT_DIR at an empty folder to keep them", self.state.checkpoint_dir, start, listed)

    def _log_newest_checkpoint(self, iteration: int) -> None:
        """After a stop at once, name the checkpoint that a resumed run would start from."""
        from gptpipe.runtime.checkpoint import list_checkpoints

        if not self.state.is_rank_zero or not self.values.get("SAVE_MODEL"):
            return
        saved = list_checkpoints(self.state.checkpoint_dir)
        if not saved:
            log.info("stopped at once at iteration %d, before the first checkpoint", iteration)
            return
        log.info("stopped at once at iteration %d; the newest checkpoint is %s (iteration %d). To go on from "
                 "it, run: gptpipe resume=%s", iteration, saved[-1][1], saved[-1][0], _shown_path(self.state.run_dir))

    def _log_resume_hint(self, iteration: int) -> None:
        """Tell the user how to continue a run stopped by Ctrl-C from the checkpoint it just saved."""
        if not self.state.is_rank_zero or not self.values.get("SAVE_MODEL") or iteration == 0:
            return
        log.info("stopped at iteration %d with a checkpoint in %s. To go on to MAX_ITERS as if never stopped, "
                 "run: gptpipe resume=%s", iteration, self.state.checkpoint_dir, _shown_path(self.state.run_dir))

    def _plain_model(self) -> torch.nn.Module:
        """Return the GPT itself, without Fabric's wrapper."""
        return self.model.module if hasattr(self.model, "module") else self.model

    def _learning_rate_at(self, iteration: int) -> float:
        from gptpipe.optim import learning_rate

        return learning_rate(iteration, self.drop, self.max_iters, self._progress(iteration))

    # -- reporting -------------------------------------------------------------------------

    def _loss_unit(self) -> str:
        return "nats/token"

    def _bits_text(self, loss: float) -> str:
        unit = getattr(self.streams, "token_unit", None)
        if unit is None:
            return ""
        return f" ({loss / LN2:.4f} bits/{unit})"

    def _log_start(self, start: int) -> None:
        if not self.state.is_rank_zero:
            return
        from gptpipe.model import parameter_counts

        module = self._plain_model()
        total, without_embeddings = parameter_counts(module)
        log.info(
            "train(): MODEL_DIMS %s, TRAIN_CONFIG %s, DROP_CONFIG %s, flags %s, %s parameters (%s without "
            "embeddings)", self.model_dims.encode(), self.train_config.encode(), self.drop.encode(),
            ", ".join(self.state.model_flags) or "none", f"{total:,}", f"{without_embeddings:,}",
        )
        log.info(
            "train(): iterations %d to %d, optimizer %s, precision %s, %d device(s) on %s, data: %s",
            start, self.max_iters, self.optimizer_name,
            self.state.precision or type(self.fabric.strategy.precision).__name__,
            self.world_size, self.fabric.device, self.streams.description,
        )
        if self.max_seconds > 0:
            log.info("train(): MAX_SECONDS %g: stops when %g s of training have passed (%.1f s spent before) if "
                     "MAX_ITERS is not reached first", self.max_seconds, self.max_seconds, self.state.train_seconds)
        if self.micro_batch < self.local_batch:
            steps = math.ceil(self.local_batch / self.micro_batch)
            log.info("train(): each batch of %d fragments per device is split into %d micro-batches of up to %d "
                     "fragments (max_tokens_per_step=%s)", self.local_batch, steps, self.micro_batch,
                     self.state.config.get("max_tokens_per_step"))

    def _log_evaluation(self, iteration: int, elapsed: float, result: Evaluation, tokens_per_s) -> None:
        speed = f"{tokens_per_s:,.0f} tokens/s" if tokens_per_s else "- tokens/s"
        accuracy = f", test accuracy {result.test_accuracy:.4f}" if result.test_accuracy is not None else ""
        log.info(
            "iteration %d | %.1f s | train loss %.4f%s | test loss %.4f%s%s | %s",
            iteration, elapsed, result.train_loss, self._bits_text(result.train_loss), result.test_loss,
            self._bits_text(result.test_loss), accuracy, speed,
        )

    def _progress_bar(self, start: int):
        if not self.state.is_rank_zero or not sys.stderr.isatty():
            return None
        from tqdm import tqdm

        return tqdm(total=self.max_iters, initial=start, unit="it", dynamic_ncols=True, leave=False)

    def _gpu_memory_mib(self) -> float | None:
        """Return this process's peak CUDA memory allocated by tensors, in MiB, or None off CUDA."""
        device = self.fabric.device
        if device.type != "cuda":
            return None
        return round(torch.cuda.max_memory_allocated(device) / 2**20, 1)

    def _write_empty_summary(self, stopped_by: str) -> None:
        """Write summary.json for a train() with nothing left to do, unless an earlier train() wrote one."""
        if self.state.is_rank_zero and not (self.state.run_dir / "summary.json").exists():
            self._write_summary("completed", stopped_by, 0, time.perf_counter(), 0.0, None)

    def _write_summary(self, status, stopped_by, iterations, started, train_seconds,
                       last_eval: Evaluation | None) -> None:
        from gptpipe.model import parameter_counts
        from gptpipe.runtime.metrics import write_json_atomic

        module = self._plain_model()
        total, without_embeddings = parameter_counts(module)
        tokens = iterations * self.train_config.tokens_per_batch
        summary = {
            "status": status,
            "stopped_by": stopped_by,
            "iteration": self.state.iteration,
            "max_iters": self.max_iters,
            "max_seconds": self.max_seconds or None,
            "train_seconds_total": round(self.state.train_seconds, 3),
            "final_eval_iteration": last_eval.iteration if last_eval else None,
            "final_train_loss": last_eval.train_loss if last_eval else None,
            "final_test_loss": last_eval.test_loss if last_eval else None,
            "final_test_accuracy": last_eval.test_accuracy if last_eval else None,
            "loss_unit": "nats/token",
            "token_unit": getattr(self.streams, "token_unit", None),
            "tokens_seen": tokens,
            "wall_time_s": round(time.perf_counter() - started, 3),
            "train_time_s": round(train_seconds, 3),
            "tokens_per_s": round(tokens / train_seconds, 1) if train_seconds > 0 else None,
            "parameters": total,
            "parameters_without_embeddings": without_embeddings,
            "MODEL_DIMS": self.model_dims.encode(),
            "TRAIN_CONFIG": self.train_config.encode(),
            "DROP_CONFIG": self.drop.encode(),
            "flags": list(self.state.model_flags),
            "optimizer": self.optimizer_name,
            "precision": self.state.precision,
            "devices": self.world_size,
            "max_gpu_memory_allocated_mib": self._gpu_memory_mib(),
        }
        write_json_atomic(self.state.run_dir / "summary.json", summary)

    @contextmanager
    def _stop_on_interrupt(self):
        """Turn the first Ctrl-C into a stop after the current step; a second one interrupts at once."""
        import threading

        if threading.current_thread() is not threading.main_thread():
            yield
            return

        first_interrupt: list[float] = []

        def request_stop(signum, frame):
            if self.stop_requested:
                # The launching process forwards Ctrl-C to rank processes that may have had it already.
                # A single process gets no copies, so there every second Ctrl-C stops at once.
                if self.world_size > 1 and time.monotonic() - first_interrupt[0] < DUPLICATE_INTERRUPT_S:
                    return
                raise KeyboardInterrupt
            self.stop_requested = True
            first_interrupt.append(time.monotonic())
            received = "SIGTERM" if signum == signal.SIGTERM else "interrupt"
            log.info("%s received: stopping after the current step (press Ctrl-C again to stop at once)", received)

        # Job schedulers ask a job to stop with SIGTERM, sent to the gptpipe process or to all of its
        # processes. Each takes it as Ctrl-C; with several ranks the launcher passes it on as SIGINT.
        previous = {number: signal.signal(number, request_stop) for number in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)


def _shown_path(path: Path) -> str:
    """Return `path` relative to the current folder when it lies inside it, else as it is."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
