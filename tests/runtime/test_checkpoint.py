"""Checkpoint files: round trips, resuming, atomic writes, pruning, averaging and rejected files."""

from __future__ import annotations

import os
import pickle
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch
from torch import nn

from gptpipe.errors import CheckpointError
from gptpipe.runtime import checkpoint
from gptpipe.runtime.checkpoint import (
    average_checkpoints,
    check_vocabulary,
    checkpoint_path,
    list_checkpoints,
    load_model_state,
    read_checkpoint,
    read_checkpoint_metadata,
    save_checkpoint,
    write_checkpoint_file,
)

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
VOCAB_SIZE = 11


class TinyModel(nn.Module):
    """Embedding, dropout, one hidden layer and an output head, which may share the embedding's weight."""

    def __init__(self, width: int = 8, tied: bool = False):
        super().__init__()
        self.embedding = nn.Embedding(VOCAB_SIZE, width)
        self.dropout = nn.Dropout(0.2)
        self.hidden = nn.Linear(width, width)
        self.head = nn.Linear(width, VOCAB_SIZE, bias=False)
        if tied:
            self.head.weight = self.embedding.weight
        self.register_buffer("seen_batches", torch.zeros((), dtype=torch.int64))

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.dropout(self.embedding(idx))
        x = torch.relu(self.hidden(x))
        return self.head(x)


def make_optimizer(kind: str, model: nn.Module) -> torch.optim.Optimizer:
    if kind == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=1e-2, betas=(0.8, 0.95), weight_decay=0.1)
    return torch.optim.SGD(model.parameters(), lr=1e-1, momentum=0.9)


def train_steps(model: nn.Module, optimizer: torch.optim.Optimizer, first_step: int, count: int) -> None:
    """Train on batches fixed by the step number. Dropout draws from the global torch generator."""
    for step in range(first_step, first_step + count):
        batch = torch.randint(0, VOCAB_SIZE, (4, 6), generator=torch.Generator().manual_seed(step))
        logits = model(batch[:, :-1])
        loss = nn.functional.cross_entropy(logits.reshape(-1, VOCAB_SIZE), batch[:, 1:].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        model.seen_batches += 1


def assert_states_equal(expected, actual, where: str = "state") -> None:
    """Assert two nested state_dict values are equal, tensors bit for bit with dtype and shape."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), where
    else:
        assert type(actual) is type(expected), where
    if isinstance(expected, torch.Tensor):
        assert actual.dtype == expected.dtype, where
        assert actual.shape == expected.shape, where
        assert torch.equal(actual, expected), where
    elif isinstance(expected, dict):
        assert list(actual) == list(expected), where
        for key in expected:
            assert_states_equal(expected[key], actual[key], f"{where}/{key}")
    elif isinstance(expected, (list, tuple)):
        assert len(actual) == len(expected), where
        for index, (left, right) in enumerate(zip(expected, actual)):
            assert_states_equal(left, right, f"{where}/{index}")
    else:
        assert actual == expected, where


def error_message(path: Path) -> str:
    with pytest.raises(CheckpointError) as caught:
        read_checkpoint(path)
    return str(caught.value)


# ---------------------------------------------------------------- round trips


def test_round_trip_model_bit_exact(tmp_path):
    torch.manual_seed(0)
    model = TinyModel()
    path = save_checkpoint(tmp_path, 7, model, extra_metadata={"MODEL_DIMS": "e8", "flags": ["MPF_TUNE"]})
    loaded = read_checkpoint(path)
    assert path == checkpoint_path(tmp_path, 7)
    assert loaded.iteration == 7
    assert loaded.metadata == {"MODEL_DIMS": "e8", "flags": ["MPF_TUNE"]}
    assert loaded.optimizer_state is None
    assert_states_equal(model.state_dict(), loaded.model_state)


@pytest.mark.parametrize("kind", ["adamw", "sgd"])
def test_round_trip_optimizer_state(tmp_path, kind):
    torch.manual_seed(0)
    model = TinyModel()
    optimizer = make_optimizer(kind, model)
    train_steps(model, optimizer, 0, 3)
    path = save_checkpoint(tmp_path, 3, model, optimizer)
    assert_states_equal(optimizer.state_dict(), read_checkpoint(path).optimizer_state)


@pytest.mark.parametrize("kind", ["adamw", "sgd"])
def test_resume_bit_identical(tmp_path, kind):
    torch.manual_seed(0)
    model = TinyModel()
    optimizer = make_optimizer(kind, model)
    train_steps(model, optimizer, 0, 3)
    path = save_checkpoint(tmp_path, 3, model, optimizer)
    train_steps(model, optimizer, 3, 4)

    torch.manual_seed(123)
    resumed = TinyModel()
    resumed_optimizer = make_optimizer(kind, resumed)
    loaded = read_checkpoint(path)
    load_model_state(resumed, loaded.model_state, path)
    resumed_optimizer.load_state_dict(loaded.optimizer_state)
    loaded.restore_rng()
    train_steps(resumed, resumed_optimizer, 3, 4)

    assert_states_equal(model.state_dict(), resumed.state_dict())


def test_round_trip_scheduler_state(tmp_path):
    model = TinyModel()
    optimizer = make_optimizer("adamw", model)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
    for _ in range(5):
        optimizer.step()
        scheduler.step()
    path = save_checkpoint(tmp_path, 5, model, optimizer, scheduler=scheduler)
    assert_states_equal(scheduler.state_dict(), read_checkpoint(path).scheduler_state)


def test_tied_weights_stored_once(tmp_path):
    model = TinyModel(tied=True)
    path = save_checkpoint(tmp_path, 1, model)
    with safetensors.safe_open(str(path), framework="pt") as file:
        stored = set(file.keys())
    assert "embedding.weight" in stored
    assert "head.weight" not in stored


def test_tied_weights_load(tmp_path):
    torch.manual_seed(0)
    model = TinyModel(tied=True)
    path = save_checkpoint(tmp_path, 1, model)
    fresh = TinyModel(tied=True)
    load_model_state(fresh, read_checkpoint(path).model_state, path)
    assert torch.equal(fresh.head.weight, model.embedding.weight)
    assert fresh.head.weight is fresh.embedding.weight


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float64])
def test_round_trip_dtype(tmp_path, dtype):
    torch.manual_seed(0)
    model = TinyModel().to(dtype)
    path = save_checkpoint(tmp_path, 1, model)
    assert_states_equal(model.state_dict(), read_checkpoint(path).model_state)


def test_round_trip_state_dict_input(tmp_path):
    state = {"weight": torch.arange(6.0).reshape(2, 3).t(), "bias": torch.zeros(0)}
    path = write_checkpoint_file(tmp_path / "model.safetensors", 0, state, rng=False)
    loaded = read_checkpoint(path).model_state
    assert torch.equal(loaded["weight"], state["weight"])
    assert loaded["bias"].shape == (0,)


def test_read_metadata_only(tmp_path):
    path = save_checkpoint(tmp_path, 2, TinyModel(), extra_metadata={"vocab_size": VOCAB_SIZE})
    assert read_checkpoint_metadata(path) == {"vocab_size": VOCAB_SIZE}


def test_read_without_optimizer(tmp_path):
    model = TinyModel()
    optimizer = make_optimizer("adamw", model)
    train_steps(model, optimizer, 0, 1)
    path = save_checkpoint(tmp_path, 1, model, optimizer)
    assert read_checkpoint(path, with_optimizer=False).optimizer_state is None


# ---------------------------------------------------------------- random states


def test_restore_rng(tmp_path):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    path = save_checkpoint(tmp_path, 1, TinyModel())
    expected = (random.random(), np.random.rand(), torch.rand(3))

    random.seed(9)
    np.random.seed(9)
    torch.manual_seed(9)
    read_checkpoint(path).restore_rng()
    assert random.random() == expected[0]
    assert np.random.rand() == expected[1]
    assert torch.equal(torch.rand(3), expected[2])


def test_restore_rng_not_saved(tmp_path):
    path = save_checkpoint(tmp_path, 1, TinyModel(), rng=False)
    loaded = read_checkpoint(path)
    assert loaded.rng_state is None
    with pytest.raises(CheckpointError, match="rng=False"):
        loaded.restore_rng()


# ---------------------------------------------------------------- atomic writes and pruning


def test_failed_write_keeps_previous(tmp_path, monkeypatch):
    model = TinyModel()
    save_checkpoint(tmp_path, 1, model)

    def write_half_then_fail(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"partial")
        raise RuntimeError("disk went away")

    monkeypatch.setattr(safetensors.torch, "save_file", write_half_then_fail)
    with pytest.raises(RuntimeError):
        save_checkpoint(tmp_path, 2, model)
    assert sorted(entry.name for entry in tmp_path.iterdir()) == ["iter_1.safetensors"]
    assert read_checkpoint(checkpoint_path(tmp_path, 1)).iteration == 1


def test_failed_write_disk_error(tmp_path, monkeypatch):
    def fail(tensors, filename, metadata=None):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(safetensors.torch, "save_file", fail)
    with pytest.raises(CheckpointError, match="free disk space"):
        save_checkpoint(tmp_path, 1, TinyModel())


KILLED_WRITER = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    import torch
    from gptpipe.runtime.checkpoint import save_checkpoint

    folder, marker = Path(sys.argv[1]), Path(sys.argv[2])

    def stall(descriptor):
        marker.write_text(str(os.getpid()))
        time.sleep(120)

    os.fsync = stall
    save_checkpoint(folder, 2, torch.nn.Linear(64, 64))
    """
)


def test_killed_writer_keeps_previous(tmp_path):
    folder = tmp_path / "checkpoints"
    save_checkpoint(folder, 1, TinyModel())
    marker = tmp_path / "writer-stalled"
    environment = dict(os.environ, PYTHONPATH=str(REPOSITORY_ROOT))
    writer = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(folder), str(marker)], env=environment)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists() and writer.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists(), "the writer never reached fsync"
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()

    names = sorted(entry.name for entry in folder.iterdir())
    assert names == [f".iter_2.safetensors.tmp-{writer.pid}", "iter_1.safetensors"]
    assert [iteration for iteration, _ in list_checkpoints(folder)] == [1]
    assert read_checkpoint(checkpoint_path(folder, 1)).iteration == 1

    save_checkpoint(folder, 3, TinyModel())
    assert sorted(entry.name for entry in folder.iterdir()) == ["iter_1.safetensors", "iter_3.safetensors"]


@pytest.mark.parametrize(
    "keep_count, kept",
    [(0, [1, 2, 3, 4, 5]), (1, [5]), (2, [4, 5]), (9, [1, 2, 3, 4, 5])],
)
def test_keep_count(tmp_path, keep_count, kept):
    model = TinyModel()
    for iteration in range(1, 6):
        save_checkpoint(tmp_path, iteration, model, keep_count=keep_count)
    assert [iteration for iteration, _ in list_checkpoints(tmp_path)] == kept


def test_list_sorted_by_iteration(tmp_path):
    for name in ["iter_10.safetensors", "iter_9.safetensors", ".iter_11.safetensors.tmp-1", "notes.txt"]:
        (tmp_path / name).write_bytes(b"")
    assert list_checkpoints(tmp_path) == [(9, tmp_path / "iter_9.safetensors"), (10, tmp_path / "iter_10.safetensors")]


# ---------------------------------------------------------------- rejected files


def write_valid(tmp_path: Path) -> Path:
    return save_checkpoint(tmp_path, 1, TinyModel())


def make_truncated(tmp_path: Path) -> Path:
    path = write_valid(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def make_header_cut(tmp_path: Path) -> Path:
    path = write_valid(tmp_path)
    path.write_bytes(path.read_bytes()[:20])
    return path


def make_random_bytes(tmp_path: Path) -> Path:
    path = tmp_path / "random.safetensors"
    path.write_bytes(b"\x01" + random.Random(0).randbytes(999))
    return path


def make_empty(tmp_path: Path) -> Path:
    path = tmp_path / "empty.safetensors"
    path.write_bytes(b"")
    return path


def make_pickle(tmp_path: Path) -> Path:
    path = tmp_path / "model.pkl"
    with open(path, "wb") as file:
        pickle.dump({"weight": [1.0, 2.0]}, file)
    return path


def make_torch_save(tmp_path: Path) -> Path:
    path = tmp_path / "model.pt"
    torch.save(TinyModel().state_dict(), path)
    return path


def make_foreign_safetensors(tmp_path: Path) -> Path:
    path = tmp_path / "foreign.safetensors"
    safetensors.torch.save_file({"weight": torch.ones(2)}, str(path), metadata={"format": "pt"})
    return path


def make_flipped_byte(tmp_path: Path) -> Path:
    path = write_valid(tmp_path)
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


def make_trailing_bytes(tmp_path: Path) -> Path:
    path = write_valid(tmp_path)
    path.write_bytes(path.read_bytes() + b"\0" * 16)
    return path


@pytest.mark.parametrize(
    "make_file, expected",
    [
        (make_truncated, "is truncated"),
        (make_header_cut, "is truncated"),
        (make_empty, "truncated (0 bytes)"),
        (make_random_bytes, "not a safetensors file"),
        (make_pickle, "is a pickle file"),
        (make_torch_save, "zip archive as written by torch.save"),
        (make_foreign_safetensors, "not written by gptpipe"),
        (make_flipped_byte, "does not match its checksum"),
        (make_trailing_bytes, "is corrupt"),
    ],
)
def test_rejected_file(tmp_path, make_file, expected):
    path = make_file(tmp_path)
    message = error_message(path)
    assert str(path) in message
    assert expected in message


@pytest.mark.parametrize("make_file", [make_pickle, make_torch_save])
def test_pickle_message_explains_conversion(tmp_path, make_file):
    message = error_message(make_file(tmp_path))
    assert "can run arbitrary code" in message
    assert "write_checkpoint_file" in message


def test_pickle_not_unpickled(tmp_path, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("a pickle was loaded")

    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(torch, "load", forbidden)
    with pytest.raises(CheckpointError):
        read_checkpoint(make_torch_save(tmp_path))


def test_header_length_like_pickle(tmp_path):
    # A header of 0x480 bytes starts the file with 0x80 0x04, the opening of a protocol-4 pickle.
    path = tmp_path / "model.safetensors"
    for padding in range(1200):
        write_checkpoint_file(path, 0, {"w": torch.ones(1)}, extra_metadata={"pad": "x" * padding}, rng=False)
        if path.read_bytes()[:2] == b"\x80\x04":
            break
    assert path.read_bytes()[:2] == b"\x80\x04"
    assert torch.equal(read_checkpoint(path).model_state["w"], torch.ones(1))


def make_folder_with_checkpoints(tmp_path: Path) -> Path:
    for iteration in (200, 100):
        save_checkpoint(tmp_path / "run", iteration, TinyModel())
    return tmp_path / "run"


def make_empty_folder(tmp_path: Path) -> Path:
    (tmp_path / "run").mkdir()
    return tmp_path / "run"


@pytest.mark.parametrize(
    "make_folder, expected",
    [
        (make_folder_with_checkpoints, "contains checkpoints for iterations 100, 200"),
        (make_empty_folder, "contains no checkpoints"),
        (lambda tmp_path: tmp_path / "run", "does not exist"),
    ],
)
def test_missing_file_message(tmp_path, make_folder, expected):
    folder = make_folder(tmp_path)
    message = error_message(checkpoint_path(folder, 300))
    assert "iter_300.safetensors not found" in message
    assert expected in message


def test_model_mismatch_message(tmp_path):
    path = save_checkpoint(tmp_path, 1, TinyModel(width=16))
    state = read_checkpoint(path).model_state
    del state["hidden.bias"]
    with pytest.raises(CheckpointError) as caught:
        load_model_state(TinyModel(width=8), state, path)
    message = str(caught.value)
    assert str(path) in message
    assert "'hidden.bias'" in message
    assert "'hidden.weight' is [16, 16] in the file but [8, 8] in the model" in message


# ---------------------------------------------------------------- averaging


def save_constant_model(folder: Path, iteration: int, value: float) -> dict[str, torch.Tensor]:
    model = TinyModel()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn_like(parameter) + value)
    model.seen_batches.fill_(iteration)
    save_checkpoint(folder, iteration, model)
    return model.state_dict()


def test_average_three(tmp_path):
    torch.manual_seed(0)
    states = [save_constant_model(tmp_path, iteration, iteration / 10) for iteration in (10, 20, 30)]
    averaged, used = average_checkpoints(tmp_path, 30, 20)
    assert used == [10, 20, 30]
    for name in ("embedding.weight", "hidden.weight", "hidden.bias", "head.weight"):
        expected = (states[0][name] + states[1][name] + states[2][name]) / 3
        assert torch.equal(averaged[name], expected), name
    assert averaged["seen_batches"].item() == 30


def test_average_span_limits(tmp_path):
    for iteration in (10, 20, 30, 40):
        save_constant_model(tmp_path, iteration, 0.0)
    _, used = average_checkpoints(tmp_path, 30, 10)
    assert used == [20, 30]


def test_average_nothing_in_range(tmp_path):
    save_constant_model(tmp_path, 10, 0.0)
    with pytest.raises(CheckpointError, match="contains checkpoints for iterations 10"):
        average_checkpoints(tmp_path, 100, 5)


def test_average_shape_mismatch(tmp_path):
    save_checkpoint(tmp_path, 1, TinyModel(width=8))
    save_checkpoint(tmp_path, 2, TinyModel(width=4))
    with pytest.raises(CheckpointError, match="shapes differ"):
        average_checkpoints(tmp_path, 2, 1)


# ---------------------------------------------------------------- vocabulary


def test_vocabulary_match():
    check_vocabulary({"vocab_size": 50, "special_token_ids": {"eos": 0}}, 50, {"eos": 0})


@pytest.mark.parametrize(
    "vocab_size, special_ids, expected",
    [
        (60, {"eos": 0}, "vocabulary size 50 and special tokens {eos=0}, the data has vocabulary size 60"),
        (50, {"eos": 1}, "the data has vocabulary size 50 and special tokens {eos=1}"),
        (50, {}, "the data has vocabulary size 50 and special tokens (none)"),
    ],
)
def test_vocabulary_mismatch(vocab_size, special_ids, expected):
    with pytest.raises(CheckpointError) as caught:
        check_vocabulary({"vocab_size": 50, "special_token_ids": {"eos": 0}}, vocab_size, special_ids)
    assert expected in str(caught.value)


def test_reserved_tensor_name(tmp_path):
    with pytest.raises(ValueError, match="reserved"):
        write_checkpoint_file(tmp_path / "x.safetensors", 0, {"optim/x": torch.zeros(1)})


def test_format_version_newer(tmp_path):
    path = tmp_path / "future.safetensors"
    document = '{"format": "%s", "version": 99}' % checkpoint.FORMAT_NAME
    safetensors.torch.save_file({"w": torch.zeros(1)}, str(path), metadata={checkpoint.METADATA_KEY: document})
    assert "upgrade gptpipe" in error_message(path)
