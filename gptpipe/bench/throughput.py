"""Training throughput: tokens/s, ms per iteration, MFU and peak memory of the real train loop.

    python -m gptpipe.bench throughput            # writes the "throughput" section of docs/benchmarks.md
    python -m gptpipe.bench throughput --quick    # one small configuration, prints only (for CI)

Each configuration runs the `gptpipe` command in a fresh process on the default corpus (bytes of
the Python standard library), so its peak RSS is its own. The run trains 2k iterations with an
evaluation after k of them. The figures come from the second k iterations. Start-up, the first
iterations (thread pool, allocator, autocast caches) and the evaluations are not counted.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path

from gptpipe.bench.idle import measure_uncontended
from gptpipe.bench.peak import peak_gflops
from gptpipe.bench.report import command_line, machine_description, write_section
from gptpipe.bench.runs import run_uncontended
from gptpipe.config.dims import HEAD_DIM, ModelDims, TrainConfig
from gptpipe.errors import GptpipeError
from gptpipe.hardware import default_device_has_fast_bf16

log = logging.getLogger("gptpipe.bench")

BYTE_VOCAB = 256
"""Vocabulary of the default corpus's byte tokenizer (the output layer's rows)."""

PRECISIONS = {"float32": "32-true", "bf16": "bf16-mixed"}
"""Name in the table -> the gptpipe `precision` setting."""


@dataclass(frozen=True)
class Configuration:
    model: str
    batch: str
    measured_iterations: int
    """k: iterations in the timed interval (and in the warm-up interval before it)."""


FULL_CONFIGURATIONS = (
    Configuration("e128h1d4relu4", "b12f64", 200),
    Configuration("e256h2d8relu4", "b16f128", 30),
    Configuration("e512h4d8relu4", "b16f256", 8),
    Configuration("e768h6d12relu4", "b8f256", 5),
)
QUICK_CONFIGURATIONS = (Configuration("e128h1d2relu1", "b4f32", 5),)


def parse_configuration(text: str) -> Configuration:
    """Parse MODEL_DIMS:TRAIN_CONFIG:K, e.g. e768h6d12relu4:b16f1024:20, for --configs."""
    parts = text.split(":")
    if len(parts) != 3 or not parts[2].isdigit() or int(parts[2]) < 1:
        raise argparse.ArgumentTypeError(f"invalid configuration {text!r}; expected MODEL_DIMS:TRAIN_CONFIG:K with "
                                         "K a whole number >= 1, e.g. e768h6d12relu4:b16f1024:20")
    try:
        ModelDims.decode(parts[0])
        TrainConfig.decode(parts[1])
    except GptpipeError as error:
        raise argparse.ArgumentTypeError(f"invalid configuration {text!r}: {error.message}") from None
    return Configuration(parts[0], parts[1], int(parts[2]))


def model_flops_per_token(dims: ModelDims, fragment_len: int, vocab_size: int) -> float:
    """Return training FLOPs per token: 6 x matrix parameters plus attention over each block's window.

    Matrix parameters are the block weights and the output layer; the embedding lookup does no
    multiplications. Attention is 12 x heads x HEAD_DIM x (mean keys per query) per block:
    Q K^T and A V each cost 2 FLOPs per multiply-add, and the backward pass costs twice the
    forward pass. A query at position t sees min(t + 1, window) keys, so the mean counts the
    window and the causal mask, not the T x T square the kernel may compute.
    """
    matrix_parameters = dims.block_parameters() + dims.width * vocab_size
    attention = 0.0
    for block in range(dims.depth):
        window = dims.local_window if block % 2 == 0 else dims.window
        mean_keys = sum(min(t + 1, window) for t in range(fragment_len)) / fragment_len
        attention += 12 * dims.heads * HEAD_DIM * mean_keys
    return 6 * matrix_parameters + attention


@dataclass
class Row:
    configuration: Configuration
    precision: str
    tokens_per_s: float
    ms_per_iteration: float
    mfu: float
    peak_rss_mib: float
    peak_gpu_mib: float | None
    """torch.cuda.max_memory_allocated of the run in MiB (from its summary.json), None on CPUs."""
    command: str
    other_cores: float


def write_script(folder: Path, configuration: Configuration) -> Path:
    k = configuration.measured_iterations
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / f"{configuration.model}_{configuration.batch}.txt"
    script.write_text(
        f"MODEL_DIMS = '{configuration.model}'\n"
        f"TRAIN_CONFIG = '{configuration.batch}'\n"
        "DROP_CONFIG = 'lr0.001slow10'\n"
        f"MAX_ITERS = {2 * k}\n"
        f"EVAL_INTERVAL = {k}\n"
        "EVAL_ITERS = 1\n"
        "SAVE_MODEL = 0\n"
        "create_model()\n"
        "train()\n",
        encoding="utf-8",
    )
    return script


def measure(configuration: Configuration, precision: str, optimizer: str, peaks: dict[str, float],
            folder: Path, extra: list[str], quick: bool = False) -> Row:
    script = write_script(folder, configuration)
    overrides = [f"precision={PRECISIONS[precision]}", f"optimizer={optimizer}", *extra]
    run_root = folder / f"{script.stem}_{precision}"
    result = run_uncontended(script, run_root, overrides, timeout=1200, quick=quick)
    # The last evaluation row's tokens/s covers the iterations since the previous evaluation only.
    tokens_per_s = float(result.evaluations[-1]["tokens_per_s"])
    dims = ModelDims.decode(configuration.model)
    train = TrainConfig.decode(configuration.batch)
    flops = model_flops_per_token(dims, train.fragment_len, BYTE_VOCAB) * tokens_per_s
    return Row(
        configuration=configuration,
        precision=precision,
        tokens_per_s=tokens_per_s,
        ms_per_iteration=1000 * train.tokens_per_batch / tokens_per_s,
        mfu=flops / (peaks[precision] * 1e9),
        peak_rss_mib=result.peak_rss_mib,
        peak_gpu_mib=result.summary.get("max_gpu_memory_allocated_mib"),
        command=f"gptpipe script=<{script.name}> " + " ".join(overrides),
        other_cores=result.other_cores,
    )


def format_report(rows: list[Row], peaks: dict[str, float], optimizer: str, repeats: int) -> str:
    on_gpu = any(row.peak_gpu_mib is not None for row in rows)
    memory_text = ("Peak memory is torch.cuda.max_memory_allocated of the process." if on_gpu
                   else "Peak memory is the process's maximum RSS.")
    lines = [
        f"Machine: {machine_description()}",
        "",
        f"Command: `{command_line()}`",
        "",
        f"Measured matrix-multiply peak (`python -m gptpipe.bench peak`, best median): float32 "
        f"{peaks['float32']:.0f} GFLOP/s, bf16 {peaks['bf16']:.0f} GFLOP/s. MFU divides the model FLOPs per "
        "second by the peak of the precision the run used.",
        "",
        "Model FLOPs per token = 6 x (block weights + output layer) + attention, with attention = "
        "12 x heads x 128 x (mean keys per query) per block, where a query at position t sees "
        "min(t + 1, window) keys (window 64 on even blocks, w on odd blocks; w is 64 by default).",
        "",
        f"Each row is the `gptpipe` command in a fresh process on the default corpus (byte tokens), optimizer "
        f"`{optimizer}`, dropout and channel masks off, with a train script of MAX_ITERS = 2k, "
        "EVAL_INTERVAL = k, EVAL_ITERS = 1, SAVE_MODEL = 0. Tokens/s is the train loop's own figure for "
        "iterations k to 2k (the log line of the last evaluation), so start-up, warm-up iterations and "
        f"evaluations are excluded; the median of {repeats} runs. {memory_text} "
        "Every run waited for an idle CPU and was repeated if other processes used more than 0.1 cores "
        "during it.",
        "",
        "| MODEL_DIMS | TRAIN_CONFIG | precision | k | tokens/s | ms/iteration | MFU | "
        + ("peak GPU memory |" if on_gpu else "peak RSS |"),
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        c = row.configuration
        lines.append(
            f"| {c.model} | {c.batch} | {row.precision} | {c.measured_iterations} | {row.tokens_per_s:,.0f} | "
            f"{row.ms_per_iteration:.1f} | {100 * row.mfu:.1f}% | "
            f"{row.peak_gpu_mib if on_gpu else row.peak_rss_mib:,.0f} MiB |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m gptpipe.bench throughput",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one tiny configuration; does not write docs")
    parser.add_argument("--optimizer", default="adamw", help="gptpipe optimizer setting for every run")
    parser.add_argument("--repeats", type=int, default=3, help="runs per configuration; the table shows medians")
    parser.add_argument("--precisions", nargs="+", choices=list(PRECISIONS),
                        help="default: both, or float32 only on a CPU without native bf16 instructions")
    parser.add_argument("--models", nargs="+", help="only the configurations with these MODEL_DIMS")
    parser.add_argument("--configs", nargs="+", metavar="MODEL_DIMS:TRAIN_CONFIG:K", type=parse_configuration,
                        help="measure these configurations instead of the default table, e.g. "
                        "e768h6d12relu4:b16f1024:20 (k: timed iterations)")
    parser.add_argument("--section", default="throughput",
                        help="docs/benchmarks.md section to write, so a GPU table does not replace the CPU one")
    parser.add_argument("--no-docs", action="store_true", help="print only, even for a full run")
    parser.add_argument("overrides", nargs="*", help="extra gptpipe settings for every run, e.g. compile=true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    configurations = QUICK_CONFIGURATIONS if args.quick else FULL_CONFIGURATIONS
    if args.configs:
        configurations = tuple(args.configs)
    if args.models:
        configurations = tuple(c for c in configurations if c.model in args.models)
    repeats = 1 if args.quick else args.repeats
    if args.precisions is None:
        args.precisions = list(PRECISIONS)
        if not args.quick and not default_device_has_fast_bf16():
            args.precisions = ["float32"]
            log.info("this CPU has no native bf16 matrix instructions: measuring float32 only "
                     "(--precisions float32 bf16 measures both)")
    if args.quick:
        peaks = peak_gflops(quick=True)
    else:
        peaks, _ = measure_uncontended(peak_gflops)
    log.info("matrix-multiply peak: float32 %.0f GFLOP/s, bf16 %.0f GFLOP/s", peaks["float32"], peaks["bf16"])
    rows = []
    with tempfile.TemporaryDirectory(prefix="gptpipe-throughput-") as folder:
        for configuration in configurations:
            for precision in args.precisions:
                runs = [measure(configuration, precision, args.optimizer, peaks, Path(folder) / f"r{repeat}",
                                args.overrides, args.quick) for repeat in range(repeats)]
                runs.sort(key=lambda row: row.tokens_per_s)
                median = runs[len(runs) // 2]
                median.peak_rss_mib = statistics.median(row.peak_rss_mib for row in runs)
                if median.peak_gpu_mib is not None:
                    median.peak_gpu_mib = statistics.median(row.peak_gpu_mib or 0.0 for row in runs)
                log.info("%s %s %s: %.0f tokens/s, %.1f ms/iteration, MFU %.1f%%, %.0f MiB", configuration.model,
                         configuration.batch, precision, median.tokens_per_s, median.ms_per_iteration,
                         100 * median.mfu, median.peak_rss_mib)
                rows.append(median)

    report = format_report(rows, peaks, args.optimizer, repeats)
    print(report)  # a benchmark's report is its output
    if not args.quick and not args.no_docs:
        title = "## Training throughput" + ("" if args.section == "throughput" else f" ({args.section})")
        page = write_section(args.section, title + "\n\n" + report)
        log.info("wrote the %s section of %s", args.section, page)


if __name__ == "__main__":
    main()
