"""Profile: where the time of one training iteration goes, by phase and by PyTorch operator.

    python -m gptpipe.bench profile                                   # e128h1d4relu4 b12f64, muon, float32
    python -m gptpipe.bench profile --model e128h1d2w64relu4 --batch b24f64 --precision bf16
    python -m gptpipe.bench profile --quick                           # a tiny model, for CI

It trains gptpipe's GPT with gptpipe's optimizer on random tokens in this process, without the
train loop around it (no Fabric, data sampling, evaluations or logging), so the figures show the
iteration itself. The phases (forward, backward, optimizer step) are timed over the measured
iterations. The operator table comes from torch.profiler over as many more iterations, and it
gives each operator's own CPU time, without the operators it calls. Nothing is written to the docs.
"""

from __future__ import annotations

import argparse
import time
from contextlib import nullcontext

import torch

from gptpipe.bench.report import command_line, machine_description
from gptpipe.config.dims import ModelDims, TrainConfig
from gptpipe.errors import ConfigError

BYTE_VOCAB = 258
"""Vocabulary of the default corpus: 256 bytes plus gptpipe's two special tokens."""

MATRIX_OPERATORS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::matmul")
"""Operators that do matrix products; their own time is the matrix-multiply share."""

TABLE_ROWS = 15


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m gptpipe.bench profile", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="e128h1d4relu4", help="MODEL_DIMS (default e128h1d4relu4)")
    parser.add_argument("--batch", default="b12f64", help="TRAIN_CONFIG (default b12f64)")
    parser.add_argument("--optimizer", default="muon", help="optimizer name, as optimizer= takes it (default muon)")
    parser.add_argument("--precision", choices=("float32", "bf16"), default="float32",
                        help="float32, or bf16 autocast as precision=bf16-mixed (default float32)")
    parser.add_argument("--iterations", type=int, default=20, help="measured iterations (default 20)")
    parser.add_argument("--quick", action="store_true", help="a tiny model and 2 iterations, for CI")
    args = parser.parse_args(argv)
    if args.quick:
        args.model, args.batch, args.iterations = "e128h1d2relu1", "b4f32", 2
    if args.iterations < 1:
        raise ConfigError(f"--iterations must be at least 1, got {args.iterations}")

    from gptpipe.optim import DEFAULT_OPTIMIZER, build_optimizer
    from gptpipe.model.gpt import GPT

    dims = ModelDims.decode(args.model)
    batch = TrainConfig.decode(args.batch)
    optimizer_name = DEFAULT_OPTIMIZER if args.optimizer == "default" else args.optimizer
    torch.manual_seed(0)
    model = GPT(dims, BYTE_VOCAB, max_len=batch.fragment_len)
    optimizer = build_optimizer(model, optimizer_name, 0.01, 0.0)
    tokens = torch.randint(0, BYTE_VOCAB, (batch.batch, batch.fragment_len + 1))
    inputs, targets = tokens[:, :-1], tokens[:, 1:]
    autocast = (torch.autocast("cpu", dtype=torch.bfloat16) if args.precision == "bf16" else nullcontext)

    def iteration(phases: dict[str, float] | None = None) -> None:
        started = time.perf_counter()
        with autocast():
            _, loss = model(inputs, targets)
        forward_done = time.perf_counter()
        loss.backward()
        backward_done = time.perf_counter()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if phases is not None:
            phases["forward"] += forward_done - started
            phases["backward"] += backward_done - forward_done
            phases["optimizer step"] += time.perf_counter() - backward_done

    for _ in range(max(3, args.iterations // 2)):
        iteration()
    phases = dict.fromkeys(("forward", "backward", "optimizer step"), 0.0)
    for _ in range(args.iterations):
        iteration(phases)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profiler:
        for _ in range(args.iterations):
            iteration()
    print(format_report(args, dims, batch, optimizer_name, phases, profiler.key_averages()))


def format_report(args: argparse.Namespace, dims: ModelDims, batch: TrainConfig, optimizer_name: str,
                  phases: dict[str, float], events) -> str:
    """Return the printed report: phases, the matrix-multiply share and the operators with the most own time."""
    count = args.iterations
    total = sum(phases.values())
    tokens_per_s = batch.batch * batch.fragment_len * count / total
    lines = [
        f"Machine: {machine_description()}",
        f"Command: `{command_line()}`",
        "",
        f"{dims.encode()} {batch.encode()}, optimizer {optimizer_name}, {args.precision}, random tokens, "
        f"{count} iterations: {1000 * total / count:.1f} ms per iteration, {tokens_per_s:,.0f} tokens/s",
        "",
        "| phase | ms per iteration | share |",
        "|---|---|---|",
    ]
    lines += [f"| {name} | {1000 * seconds / count:.1f} | {seconds / total:.0%} |" for name, seconds in phases.items()]

    own_total = sum(event.self_cpu_time_total for event in events)
    matrix = sum(event.self_cpu_time_total for event in events if event.key in MATRIX_OPERATORS)
    lines += ["", f"Matrix products ({', '.join(MATRIX_OPERATORS)}): {matrix / own_total:.0%} of the profiled "
              "CPU time, the optimizer's included.", "",
              "| operator | own CPU ms per iteration | share | calls per iteration |", "|---|---|---|---|"]
    ranked = sorted(events, key=lambda event: event.self_cpu_time_total, reverse=True)[:TABLE_ROWS]
    for event in ranked:
        lines.append(f"| {event.key} | {event.self_cpu_time_total / 1000 / count:.2f} | "
                     f"{event.self_cpu_time_total / own_total:.1%} | {event.count / count:g} |")
    return "\n".join(lines)
