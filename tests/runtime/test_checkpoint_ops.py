"""Checkpoint operations through scripts: save, load_model, load_checkpoint, reset_model_grad and their errors."""

from __future__ import annotations

import pickle

import pytest
import torch
from config_loading import load_config

from gptpipe.config.plan import build_plan
from gptpipe.dsl import parse_file
from gptpipe.errors import GptpipeError
from gptpipe.optim import DEFAULT_OPTIMIZER
from gptpipe.runtime.checkpoint import list_checkpoints, read_checkpoint
from gptpipe.runtime.runner import execute_plan
from gptpipe.runtime.state import RunState
from script_runs import train_script



def saved(state: RunState) -> list[int]:
    return [iteration for iteration, _ in list_checkpoints(state.checkpoint_dir)]


def test_train_saves_every_interval(run, text_file):
    state = run(train_script(text_file, 4, 2))
    assert saved(state) == [2, 4]


def test_keep_model_count_keeps_newest(run, text_file):
    state = run(train_script(text_file, 6, 2, "KEEP_MODEL_COUNT = 2\n"))
    assert saved(state) == [4, 6]


def test_save_model_false_writes_nothing(run, text_file):
    state = run(train_script(text_file, 2, 2, "SAVE_MODEL = false\n"))
    assert saved(state) == []


@pytest.mark.parametrize("key, expected", [
    ("MODEL_DIMS", "e128h1d2w32relu1"),
    ("iteration", 2),
    ("optimizer", DEFAULT_OPTIMIZER),
    ("flags", ["MPF_TAIL_LOSS"]),
    ("max_len", 16),
])
def test_checkpoint_metadata(run, text_file, key, expected):
    body = f"MAX_ITERS = 2\nEVAL_INTERVAL = 2\nmake_char_dataset('{text_file}')\ncreate_model(MPF_TAIL_LOSS)\ntrain()\n"
    state = run(body)
    metadata = read_checkpoint(state.checkpoint_dir / "iter_2.safetensors").metadata
    assert metadata[key] == expected


def test_checkpoint_metadata_vocabulary(run, text_file):
    state = run(train_script(text_file, 2, 2))
    metadata = read_checkpoint(state.checkpoint_dir / "iter_2.safetensors").metadata
    assert metadata["vocab_size"] == state.model.vocab_size
    assert metadata["tokenizer"]["kind"] == "char"
    assert set(metadata["special_token_ids"]) == {"unknown", "fragment_start", "doc_start"}
    assert metadata["config"]["precision"] == "32-true"


def test_checkpoint_contains_optimizer_state(run, text_file):
    state = run(train_script(text_file, 2, 2))
    checkpoint = read_checkpoint(state.checkpoint_dir / "iter_2.safetensors")
    assert checkpoint.optimizer_state is not None
    assert checkpoint.rng_state is not None


def test_load_model_round_trip_bit_exact(run, text_file):
    trained = run(train_script(text_file, 2, 2))
    path = trained.checkpoint_dir / "iter_2.safetensors"
    loaded = run(f"make_char_dataset('{text_file}')\nload_model('{path}')\n")
    expected = trained.model.state_dict()
    for name, tensor in loaded.model.state_dict().items():
        assert torch.equal(tensor, expected[name]), name


def test_load_model_starts_at_zero(run, text_file):
    trained = run(train_script(text_file, 2, 2))
    path = trained.checkpoint_dir / "iter_2.safetensors"
    state = run(f"MAX_ITERS = 1\nEVAL_INTERVAL = 5\nSAVE_MODEL = false\nmake_char_dataset('{text_file}')\n"
                f"load_model('{path}')\ntrain()\n")
    assert state.iteration == 1


def test_load_model_keeps_file_dims(run, text_file, tmp_path):
    trained = run(train_script(text_file, 2, 2))
    path = trained.checkpoint_dir / "iter_2.safetensors"
    # A script without MODEL_DIMS takes the file's shape, although the variable's default differs.
    script = tmp_path / "load.txt"
    script.write_text(f"MAX_ITERS = 1\nSAVE_MODEL = false\nmake_char_dataset('{text_file}')\n"
                      f"load_model('{path}')\ntrain()\n")
    config = load_config(precision="32-true", accelerator="cpu")
    plan = build_plan([parse_file(script)], config)
    state = execute_plan(plan, config, tmp_path / "run")
    assert state.model.dims.encode() == "e128h1d2w32relu1"


def test_load_model_default_dims_assigned_conflicts(run, text_file):
    trained = run(train_script(text_file, 2, 2))
    path = trained.checkpoint_dir / "iter_2.safetensors"
    with pytest.raises(GptpipeError) as caught:
        run(f"MODEL_DIMS = 'e256h1d36w64relu1'\nmake_char_dataset('{text_file}')\nload_model('{path}')\n")
    assert "e256h1d36w64relu1" in caught.value.message
    assert "e128h1d2w32relu1" in caught.value.message


def test_load_model_conflicting_dims(run, text_file):
    trained = run(train_script(text_file, 2, 2))
    path = trained.checkpoint_dir / "iter_2.safetensors"
    with pytest.raises(GptpipeError) as caught:
        run(f"MODEL_DIMS = 'e256h2d2w32'\nmake_char_dataset('{text_file}')\nload_model('{path}')\n")
    assert "e256h2d2w32relu1" in caught.value.message
    assert "e128h1d2w32relu1" in caught.value.message


def test_load_model_truncated_file(run, text_file):
    trained = run(train_script(text_file, 2, 2))
    path = trained.checkpoint_dir / "iter_2.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(GptpipeError) as caught:
        run(f"make_char_dataset('{text_file}')\nload_model('{path}')\n")
    assert "truncated" in caught.value.message
    assert str(path) in caught.value.message


def test_load_model_pickle_rejected(run, text_file, tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"weight": torch.zeros(2)}, path)
    with pytest.raises(GptpipeError) as caught:
        run(f"make_char_dataset('{text_file}')\nload_model('{path}')\n")
    assert "does not load pickles" in caught.value.message


def test_load_model_raw_pickle_rejected(run, text_file, tmp_path):
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps({"weight": [0.0, 1.0]}, protocol=4))
    with pytest.raises(GptpipeError) as caught:
        run(f"make_char_dataset('{text_file}')\nload_model('{path}')\n")
    assert "does not load pickles" in caught.value.message


def test_load_model_not_safetensors(run, text_file, tmp_path):
    path = tmp_path / "notes.safetensors"
    path.write_bytes(b"hello, this is text and not a model file")
    with pytest.raises(GptpipeError) as caught:
        run(f"make_char_dataset('{text_file}')\nload_model('{path}')\n")
    assert "not a safetensors file" in caught.value.message


def test_load_model_vocabulary_mismatch(run, text_file, tmp_path):
    trained = run(train_script(text_file, 2, 2))
    path = trained.checkpoint_dir / "iter_2.safetensors"
    other_text = tmp_path / "other.txt"
    other_text.write_text("0123456789 xyz\n" * 200)
    with pytest.raises(GptpipeError) as caught:
        run(f"make_char_dataset('{other_text}')\nload_model('{path}')\n")
    assert "vocabulary mismatch" in caught.value.message


def test_load_checkpoint_restores_iteration(run, text_file, tmp_path):
    folder = tmp_path / "kept"
    run(train_script(text_file, 4, 2, f"CHECKPOINT_DIR = '{folder}'\n"))
    state = run(f"CHECKPOINT_DIR = '{folder}'\nmake_char_dataset('{text_file}')\nload_checkpoint(2)\n")
    assert state.iteration == 2


def test_load_checkpoint_newest(run, text_file, tmp_path):
    folder = tmp_path / "kept"
    run(train_script(text_file, 4, 2, f"CHECKPOINT_DIR = '{folder}'\n"))
    state = run(f"CHECKPOINT_DIR = '{folder}'\nmake_char_dataset('{text_file}')\nload_checkpoint()\n")
    assert state.iteration == 4


def test_load_checkpoint_warns_on_changes(run, text_file, tmp_path, caplog):
    folder = tmp_path / "kept"
    run(train_script(text_file, 4, 2, f"CHECKPOINT_DIR = '{folder}'\n"))
    run(f"CHECKPOINT_DIR = '{folder}'\nMAX_ITERS = 6\nTRAIN_CONFIG = 'b2f16'\nmake_char_dataset('{text_file}')\n"
        "load_checkpoint()\n")
    warnings = [record.getMessage() for record in caplog.records if record.levelname == "WARNING"]
    assert any(message.startswith("load_checkpoint(): MAX_ITERS was 4 when ") for message in warnings), warnings
    batch_warnings = [message for message in warnings if message.startswith("load_checkpoint(): TRAIN_CONFIG was ")]
    assert len(batch_warnings) == 1, warnings
    assert "is b2f16 now; training goes on with the new batches" in batch_warnings[0]


def test_load_checkpoint_restores_optimizer(run, text_file, tmp_path):
    folder = tmp_path / "kept"
    run(train_script(text_file, 2, 2, f"CHECKPOINT_DIR = '{folder}'\n"))
    # MAX_ITERS = 2: train() sets up (and loads the optimizer state) but runs no iteration.
    state = run(f"CHECKPOINT_DIR = '{folder}'\nMAX_ITERS = 2\nmake_char_dataset('{text_file}')\n"
                "load_checkpoint(2)\ntrain()\n")
    expected = read_checkpoint(folder / "iter_2.safetensors").optimizer_state["state"]
    loaded = state.optimizer.state_dict()["state"]
    assert sorted(loaded) == sorted(expected)
    for index, entries in expected.items():
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                assert torch.equal(loaded[index][key], value), (index, key)


def test_load_checkpoint_missing_iteration_at_plan_time(run, text_file, tmp_path):
    folder = tmp_path / "kept"
    run(train_script(text_file, 2, 2, f"CHECKPOINT_DIR = '{folder}'\n"))
    with pytest.raises(GptpipeError) as caught:
        run(f"CHECKPOINT_DIR = '{folder}'\nmake_char_dataset('{text_file}')\nload_checkpoint(5)\n")
    assert "iter_5.safetensors not found" in caught.value.message
    assert "iterations: 2" in caught.value.message


def test_load_checkpoint_missing_file_lists_folder(run, text_file, tmp_path):
    # No CHECKPOINT_DIR: the run folder's checkpoints/ is checked only when the step runs.
    with pytest.raises(GptpipeError) as caught:
        run(f"make_char_dataset('{text_file}')\nload_checkpoint(5)\n")
    assert "iter_5.safetensors not found" in caught.value.message
    assert "does not exist" in caught.value.message


def test_load_checkpoint_written_earlier_in_plan(run, text_file, tmp_path):
    folder = tmp_path / "kept"
    folder.mkdir()
    state = run(train_script(text_file, 4, 2, f"CHECKPOINT_DIR = '{folder}'\n") + "load_checkpoint(2)\n")
    assert state.iteration == 2


def test_load_checkpoint_negative_iteration(run, text_file):
    with pytest.raises(GptpipeError) as caught:
        run(f"make_char_dataset('{text_file}')\nload_checkpoint(-3)\n")
    assert "must be >= 0" in caught.value.message


def test_reset_model_grad_drops_optimizer(run, text_file):
    state = run(train_script(text_file, 2, 2) + "reset_model_grad()\n")
    assert state.optimizer is None


def test_reset_model_grad_then_train(run, text_file):
    body = (f"MAX_ITERS = 2\nEVAL_INTERVAL = 2\nSAVE_MODEL = false\nmake_char_dataset('{text_file}')\n"
            "create_model()\ntrain()\nreset_model_grad()\nTRAIN_CONFIG = 'b2f16'\nMAX_ITERS = 4\ntrain()\n")
    state = run(body, optimizer="adamw")
    assert state.iteration == 4
    assert type(state.optimizer).__name__ == "AdamW"


def test_reset_model_grad_needs_model(run):
    with pytest.raises(GptpipeError) as caught:
        run("reset_model_grad()\n")
    assert "needs a model" in caught.value.message
