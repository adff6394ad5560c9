"""Data pipeline throughput: fragment sampling and folder indexing.

    python -m gptpipe.bench.data            # full run, writes the "data" section of docs/benchmarks.md
    python -m gptpipe.bench.data --quick    # a few seconds, prints only (for CI)

The text is the default corpus (the Python standard library's *.py files), so no download is needed.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from gptpipe.bench.report import command_line, machine_description, write_section
from gptpipe.data import FragmentSampler
from gptpipe.data.files import write_docset
from gptpipe.data.index import index_docset_folder
from gptpipe.data.pipeline import DataPipeline, default_corpus_documents
from gptpipe.data.tokenizer import BpeTokenizer, ByteTokenizer, Tokenizer

BATCH_SIZE = 64
FRAGMENT_LEN = 1024
BPE_VOCAB_SIZE = 4096
PACK_DOCUMENTS = 200


def measure_sampling(tokens: np.ndarray, doc_start_token: int | None, seconds: float) -> float:
    """Return tokens per second (x tokens) drawing b64f1024 batches for about `seconds`."""
    sampler = FragmentSampler(tokens, FRAGMENT_LEN, seed=0, doc_start_token=doc_start_token)
    sampler.batch(BATCH_SIZE, 0)
    iterations = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        sampler.batch(BATCH_SIZE, iterations)
        iterations += 1
    return iterations * BATCH_SIZE * FRAGMENT_LEN / (time.perf_counter() - start)


def train_bpe(documents: list[str]) -> BpeTokenizer:
    from tokenizers import Tokenizer as HfTokenizer
    from tokenizers import decoders, models, pre_tokenizers, trainers

    hf_tokenizer = HfTokenizer(models.BPE())
    hf_tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    hf_tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=BPE_VOCAB_SIZE, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    hf_tokenizer.train_from_iterator(documents, trainer=trainer)
    return BpeTokenizer(hf_tokenizer)


def measure_indexing(documents: list[str], tokenizer: Tokenizer) -> tuple[float, float]:
    """Write `documents` as document packs, index them; return (MB of text per second, tokens per byte)."""
    text_bytes = sum(len(d.encode("utf-8")) for d in documents)
    with tempfile.TemporaryDirectory() as folder:
        for number, start in enumerate(range(0, len(documents), PACK_DOCUMENTS)):
            write_docset(Path(folder) / f"pack{number:04d}.docs", documents[start:start + PACK_DOCUMENTS])
        begin = time.perf_counter()
        index_docset_folder(folder, tokenizer, tokenizer.fragment_start_token, tokenizer.vocab_size)
        elapsed = time.perf_counter() - begin
        token_count = (Path(folder) / "gptpipe-tokens.bin").stat().st_size // 2
    return text_bytes / 1e6 / elapsed, token_count / text_bytes


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="run for a few seconds and do not write docs")
    args = parser.parse_args(argv)
    seconds = 0.5 if args.quick else 3.0
    corpus_bytes = (2 << 20) if args.quick else (8 << 20)

    _, documents = default_corpus_documents(corpus_bytes)
    text_mb = sum(len(d.encode("utf-8")) for d in documents) / 1e6
    corpus = DataPipeline()
    corpus.add_documents("the default corpus", documents, "the data benchmark")
    streams = corpus.streams(test_fraction=0.0)
    random_tokens = np.random.default_rng(0).integers(0, 50257, size=50_000_000 if not args.quick else 5_000_000,
                                                      dtype=np.uint16)
    rows = [
        ("sampling b64f1024, byte tokens of the default corpus", measure_sampling(streams.train, None, seconds)),
        ("sampling b64f1024, byte tokens, fragments respect document starts",
         measure_sampling(streams.train, streams.doc_start_token, seconds)),
        (f"sampling b64f1024, {len(random_tokens) / 1e6:.0f} M uint16 token ids",
         measure_sampling(random_tokens, None, seconds)),
    ]
    byte_rate, _ = measure_indexing(documents, ByteTokenizer())
    bpe_start = time.perf_counter()
    bpe = train_bpe(documents[: max(1, len(documents) // 4)])
    bpe_train_seconds = time.perf_counter() - bpe_start
    bpe_rate, bpe_tokens_per_byte = measure_indexing(documents, bpe)

    lines = [
        f"Machine: {machine_description()}",
        f"Command: `{command_line()}`",
        "",
        "| measurement | result |",
        "| --- | --- |",
    ]
    lines += [f"| {name} | {rate / 1e6:.1f} M tokens/s |" for name, rate in rows]
    lines += [
        f"| index_docset_folder, byte tokenizer, {text_mb:.1f} MB of Python source | {byte_rate:.1f} MB/s |",
        f"| index_docset_folder, BPE tokenizer ({BPE_VOCAB_SIZE} tokens, {bpe_tokens_per_byte:.2f} tokens "
        f"per byte, trained in {bpe_train_seconds:.1f} s) | {bpe_rate:.1f} MB/s |",
    ]
    text = "\n".join(lines)
    print(text)  # a benchmark's report is its output
    if not args.quick:
        page = write_section("data", "## Data pipeline\n\n" + text)
        print(f"wrote the data section of {page}")


if __name__ == "__main__":
    main()
