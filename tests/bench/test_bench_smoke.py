"""Smoke tests: every benchmark's --quick run exits 0 and prints its table (no docs are written)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPOSITORY = Path(__file__).resolve().parents[2]
SHAKESPEARE = REPOSITORY / ".." / "shared" / "data" / "tinyshakespeare.txt"
BENCHMARKS_PAGE = REPOSITORY / "docs" / "benchmarks.md"


def run_quick(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gptpipe.bench", *args, "--quick"], cwd=REPOSITORY,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("peak", "| bf16 |"),
        ("throughput", "| e128h1d2relu1 | b4f32 | bf16 |"),
        ("levers", "| one thread (threads=1), float32 |"),
        ("profile", "| optimizer step |"),
    ],
)
def test_quick_benchmark(name: str, expected: str) -> None:
    before = BENCHMARKS_PAGE.read_text(encoding="utf-8") if BENCHMARKS_PAGE.exists() else None
    result = run_quick(name)
    assert result.returncode == 0, result.stderr[-2000:]
    assert expected in result.stdout
    assert f"python -m gptpipe.bench {name} --quick" in result.stdout
    after = BENCHMARKS_PAGE.read_text(encoding="utf-8") if BENCHMARKS_PAGE.exists() else None
    assert after == before


def test_quick_convergence() -> None:
    if not SHAKESPEARE.is_file():
        pytest.skip(f"tiny shakespeare corpus not found at {SHAKESPEARE}")
    result = run_quick("convergence", "--data", str(SHAKESPEARE))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "### cfg/shakespeare_80s.txt" in result.stdout
    assert "| seconds since start | iteration | test loss (nats/char) |" in result.stdout


def test_quick_gpu_run() -> None:
    if not SHAKESPEARE.is_file():
        pytest.skip(f"tiny shakespeare corpus not found at {SHAKESPEARE}")
    before = BENCHMARKS_PAGE.read_text(encoding="utf-8") if BENCHMARKS_PAGE.exists() else None
    result = run_quick("gpu", "--data", str(SHAKESPEARE))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "| e128h1d2relu1 | b4f32 | bf16 |" in result.stdout
    assert "### cfg/shakespeare_80s.txt" in result.stdout
    after = BENCHMARKS_PAGE.read_text(encoding="utf-8") if BENCHMARKS_PAGE.exists() else None
    assert after == before


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without a CUDA device")
def test_gpu_run_needs_cuda() -> None:
    result = subprocess.run([sys.executable, "-m", "gptpipe.bench", "gpu"], cwd=REPOSITORY,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "needs a CUDA device" in result.stderr


def test_convergence_missing_file(tmp_path: Path) -> None:
    result = run_quick("convergence", "--data", str(tmp_path / "absent.txt"))
    assert result.returncode != 0
    assert "text file not found" in result.stderr


def test_unknown_benchmark() -> None:
    result = subprocess.run([sys.executable, "-m", "gptpipe.bench", "nonsense"], cwd=REPOSITORY,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "throughput" in result.stderr


@pytest.mark.parametrize(
    ("model", "fragment_len", "expected"),
    [
        # 6 x (786,432 block weights + 128 x 256 output) + 4 blocks x 12 x 128 x 32.5 mean keys
        ("e128h1d4relu4", 64, 6 * (786_432 + 32_768) + 4 * 12 * 128 * 32.5),
        # window 32: the first 32 queries see t + 1 keys, the other 32 see 32, so the mean is 24.25
        ("e128h1d2w32relu4", 64, 6 * (393_216 + 32_768) + 2 * 12 * 128 * 24.25),
    ],
)
def test_model_flops_per_token(model: str, fragment_len: int, expected: float) -> None:
    from gptpipe.bench.throughput import model_flops_per_token
    from gptpipe.config.dims import ModelDims

    assert model_flops_per_token(ModelDims.decode(model), fragment_len, 256) == pytest.approx(expected)


def test_quick_examples() -> None:
    if not SHAKESPEARE.is_file():
        pytest.skip(f"tiny shakespeare corpus not found at {SHAKESPEARE}")
    before = BENCHMARKS_PAGE.read_text(encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "gptpipe.bench.examples", "--data", str(SHAKESPEARE), "--quick"],
                            cwd=REPOSITORY, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    for script in ("quickstart.txt", "shakespeare_char.txt", "grok_mod97.txt"):
        assert f"| `cfg/{script}` |" in result.stdout
    assert BENCHMARKS_PAGE.read_text(encoding="utf-8") == before


def test_peak_skips_sizes_too_slow_to_time(monkeypatch) -> None:
    from gptpipe.bench import peak

    rates = {torch.float32: 100.0, torch.bfloat16: 0.2}
    timed = []

    def fake_gflops(size, dtype, repeats, min_seconds):
        timed.append((size, dtype))
        return rates[dtype]

    monkeypatch.setattr(peak, "matmul_gflops", fake_gflops)
    table = peak.measure_peaks((256, 1024, 4096), repeats=1, min_seconds=0.0)
    # At 100 GFLOP/s a 4096 product takes 1.4 s, under the 10 s limit. At 0.2 GFLOP/s a 1024 one takes 10.7 s.
    assert table["float32"] == {256: 100.0, 1024: 100.0, 4096: 100.0}
    assert table["bf16"] == {256: 0.2, 1024: None, 4096: None}
    assert (1024, torch.bfloat16) not in timed
    report = peak.format_report(table, "not checked", 1)
    assert "| bf16 | 0.2 GFLOP/s | skipped | skipped | **0.2 GFLOP/s** |" in report
    assert "| float32 | 100 GFLOP/s | 100 GFLOP/s | 100 GFLOP/s | **100 GFLOP/s** |" in report
