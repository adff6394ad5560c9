"""Evaluation operations through scripts: compute_exact_test, compute_choice_score, check_cpu_gpu_match."""

from __future__ import annotations

import json
import logging
import random
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from gptpipe.data import streams_for
from gptpipe.errors import GptpipeError
from gptpipe.runtime.checkpoint import read_checkpoint
from gptpipe.runtime.eval_ops import evaluated_model
from script_runs import train_script

CYCLE = "abcdefghij"


def test_exact_test_average_is_mean_of_weights(run, text_file, tmp_path):
    folder = tmp_path / "kept"
    state = run(train_script(text_file, 6, 2, f"CHECKPOINT_DIR = '{folder}'\n"))
    model, _ = evaluated_model(state, 6, 4)
    states = [read_checkpoint(folder / f"iter_{n}.safetensors").model_state for n in (2, 4, 6)]
    for name, tensor in model.state_dict().items():
        expected = (states[0][name] + states[1][name] + states[2][name]) / 3
        assert torch.allclose(tensor, expected, rtol=1e-6, atol=1e-7), name


def test_exact_test_average_logs_count(run, text_file, tmp_path, caplog):
    folder = tmp_path / "kept"
    with caplog.at_level(logging.INFO, logger="gptpipe"):
        run(train_script(text_file, 6, 2, f"CHECKPOINT_DIR = '{folder}'\n") + "compute_exact_test(6, 4)\n")
    assert "averaging the weights of 3 checkpoints (iterations 2, 4, 6)" in caplog.text


def test_exact_test_average_leaves_run_model(run, text_file, tmp_path):
    folder = tmp_path / "kept"
    state = run(train_script(text_file, 6, 2, f"CHECKPOINT_DIR = '{folder}'\n") + "compute_exact_test(6, 4)\n")
    saved = read_checkpoint(folder / "iter_6.safetensors").model_state
    assert torch.equal(state.model.output.weight.cpu(), saved["output.weight"])


def test_exact_test_writes_result(run, text_file):
    state = run(train_script(text_file, 2, 2) + "compute_exact_test()\n")
    result = json.loads((state.run_dir / "exact_test.json").read_text())
    assert result["batches"] == 5
    assert result["standard_error"] > 0
    assert result["token_unit"] == "char"
    assert result["bits_per_unit"] == pytest.approx(result["test_loss"] / np.log(2))


def test_exact_test_history_keeps_every_call(run, text_file, tmp_path):
    folder = tmp_path / "kept"
    state = run(train_script(text_file, 4, 2, f"CHECKPOINT_DIR = '{folder}'\n")
                + "compute_exact_test(2)\ncompute_exact_test(4)\n")
    lines = (state.run_dir / "exact_test.jsonl").read_text().splitlines()
    assert [json.loads(line)["iteration"] for line in lines] == [2, 4]
    assert json.loads((state.run_dir / "exact_test.json").read_text()) == json.loads(lines[-1])


def test_exact_test_of_checkpoint_matches_current_model(run, text_file):
    state = run(train_script(text_file, 2, 2) + "compute_exact_test()\n")
    current = json.loads((state.run_dir / "exact_test.json").read_text())["test_loss"]
    again = run(f"CHECKPOINT_DIR = '{state.checkpoint_dir}'\nmake_char_dataset('{text_file}')\n"
                "compute_exact_test(2)\n")
    from_file = json.loads((again.run_dir / "exact_test.json").read_text())["test_loss"]
    assert from_file == pytest.approx(current, rel=1e-6)


def test_exact_test_of_unsaved_checkpoint_rejected_before_training(run, text_file):
    with pytest.raises(GptpipeError) as caught:
        run(train_script(text_file, 4, 2, "SAVE_MODEL = false\n") + "compute_exact_test(4)\n")
    assert "with SAVE_MODEL false train() saves no checkpoints" in caught.value.message
    assert caught.value.location.line > 1


def test_exact_test_without_model_rejected(run, text_file):
    with pytest.raises(GptpipeError) as caught:
        run(f"make_char_dataset('{text_file}')\ncompute_exact_test()\n")
    assert "evaluates the current model" in caught.value.message


def test_exact_test_missing_checkpoint(run, text_file, tmp_path):
    with pytest.raises(GptpipeError) as caught:
        run(f"CHECKPOINT_DIR = '{tmp_path}'\nmake_char_dataset('{text_file}')\ncompute_exact_test(8)\n")
    assert "iter_8.safetensors not found" in caught.value.message


def write_choice_file(path: Path, examples: list[tuple[list[int], list[list[int]], int]]) -> None:
    values: list[int] = []
    for context, endings, label in examples:
        values += [len(context), *context, len(endings)]
        for ending in endings:
            values += [len(ending), *ending]
        values.append(label)
    np.asarray(values, dtype="<u2").tofile(path)


def cycle_examples(encode, count: int) -> list[tuple[list[int], list[list[int]], int]]:
    """Contexts from the repeating CYCLE; the correct ending continues it, three others are random."""
    chooser = random.Random(5)
    examples = []
    for index in range(count):
        start = index % len(CYCLE)
        text = CYCLE * 3
        context = encode(text[start:start + 6])
        correct = encode(text[start + 6:start + 10])
        wrong = [encode("".join(chooser.choice(CYCLE) for _ in range(4))) for _ in range(3)]
        label = index % 4
        endings = wrong[:label] + [correct] + wrong[label:]
        examples.append((context, endings, label))
    return examples


def test_choice_score_above_chance(run, tmp_path):
    text_file = tmp_path / "cycle.txt"
    text_file.write_text((CYCLE * 8 + "\n") * 200)
    data_only = run(f"make_char_dataset('{text_file}')\n")
    tokenizer = streams_for(data_only).tokenizer
    choice_file = tmp_path / "choices.bin"
    write_choice_file(choice_file, cycle_examples(tokenizer.encode, 20))

    state = run(f"MAX_ITERS = 25\nEVAL_INTERVAL = 25\nSAVE_MODEL = false\nDROP_CONFIG = 'slow2lr0.02'\n"
                f"make_char_dataset('{text_file}')\ncreate_model()\ntrain()\ncompute_choice_score('{choice_file}')\n")
    score = json.loads((state.run_dir / "choice_score.json").read_text())
    assert score["examples"] == 20
    assert score["acc"] >= 0.75  # chance is 0.25 with four endings
    assert score["acc_norm"] >= 0.75


def test_choice_score_needs_model(run, tmp_path, text_file):
    choice_file = tmp_path / "choices.bin"
    write_choice_file(choice_file, [([1, 2], [[3], [4]], 0)])
    with pytest.raises(GptpipeError) as caught:
        run(f"make_char_dataset('{text_file}')\ncompute_choice_score('{choice_file}')\n")
    assert "needs a model" in caught.value.message


def test_cpu_gpu_match_without_model(run, caplog):
    with caplog.at_level(logging.INFO, logger="gptpipe"):
        run("check_cpu_gpu_match()\n")
    figures = re.search(r"RMS probability difference ([\d.]+) bp forward, ([\d.]+) bp after one optimizer step",
                        caplog.text)
    assert figures is not None, caplog.text
    assert "a fresh GPT e128h1d2w64" in caplog.text
    if not torch.cuda.is_available():
        assert "cpu with bf16 autocast (no GPU found)" in caplog.text
        assert float(figures.group(1)) > 0  # bf16 rounding must show up


def test_cpu_gpu_match_with_model(run, text_file, caplog):
    with caplog.at_level(logging.INFO, logger="gptpipe"):
        run(train_script(text_file, 2, 2, "SAVE_MODEL = false\n") + "check_cpu_gpu_match()\n")
    assert "a copy of the current model" in caplog.text
    assert "expected for" in caplog.text
