"""resume=RUN_DIR: the command line it expands to, the load_checkpoint() it adds, and its errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from config_loading import load_config
from gptpipe.cli import plan_job
from gptpipe.config.resume import add_resume_step, expand_resume
from gptpipe.dsl import parse_text
from gptpipe.errors import GptpipeError

SCRIPT = "MODEL_DIMS = 'e128h1d2'\nMAX_ITERS = 20\ncreate_model()\ntrain()\n"


def make_run(folder: Path, overrides: list[str], script: str = SCRIPT, data_script: str | None = None) -> Path:
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text("".join(f"- {item}\n" for item in overrides))
    (folder / "script.txt").write_text(script)
    if data_script is not None:
        (folder / "data_script.txt").write_text(data_script)
    return folder


def expand_error(argv: list[str]) -> GptpipeError:
    with pytest.raises(GptpipeError) as caught:
        expand_resume(argv)
    return caught.value


def test_expand_without_resume_unchanged():
    argv = ["script=x.txt", "MAX_ITERS=5", "--multirun"]
    assert expand_resume(argv) == argv


def test_expand_given_values_win(tmp_path):
    run = make_run(tmp_path / "run", ["script=cfg/x.txt", "MAX_ITERS=20", "DROP_CONFIG=lr0.005", "seed=3",
                                      "hydra.run.dir=somewhere", "resume=older"])
    argv = expand_resume([f"resume={run}", "MAX_ITERS=40"])
    assert argv == ["DROP_CONFIG=lr0.005", "seed=3", f"script={run / 'script.txt'}",
                    f"CHECKPOINT_DIR={(run / 'checkpoints').resolve()}", f"resume={run}", "MAX_ITERS=40"]


def test_expand_keeps_saved_checkpoint_dir(tmp_path):
    run = make_run(tmp_path / "run", ["script=x.txt", "CHECKPOINT_DIR=/data/kept"])
    argv = expand_resume([f"resume={run}"])
    assert [item for item in argv if item.startswith("CHECKPOINT_DIR=")] == ["CHECKPOINT_DIR=/data/kept"]


def test_expand_leaves_script_checkpoint_dir(tmp_path):
    run = make_run(tmp_path / "run", ["script=x.txt"], script="CHECKPOINT_DIR = '${data_dir}/kept'\n" + SCRIPT)
    assert not any(item.startswith("CHECKPOINT_DIR=") for item in expand_resume([f"resume={run}"]))


def test_expand_uses_saved_data_script(tmp_path):
    run = make_run(tmp_path / "run", ["script=x.txt", "data_script=d.txt"], data_script="TEST_FRACTION = 0.1\n")
    argv = expand_resume([f"resume={run}"])
    assert f"data_script={run / 'data_script.txt'}" in argv
    assert "data_script=d.txt" not in argv


@pytest.mark.parametrize("argv, message", [
    (["resume="], "resume= needs the folder of the run to continue"),
    (["resume=a,b"], "resume=a,b: a sweep over run folders is not supported"),
    (["resume=a", "resume=b"], "resume= is given 2 times"),
])
def test_expand_bad_resume_values(argv, message):
    assert message in expand_error(argv).message


def test_expand_missing_run_folder(tmp_path):
    error = expand_error([f"resume={tmp_path / 'gone'}"])
    assert error.message == f"resume={tmp_path / 'gone'}: folder not found"


def test_expand_folder_not_a_run(tmp_path):
    error = expand_error([f"resume={tmp_path}"])
    assert "not a gptpipe run folder; missing" in error.message
    assert "multirun/" in error.hint


def test_expand_rejects_script_setting(tmp_path):
    run = make_run(tmp_path / "run", ["script=x.txt"])
    error = expand_error([f"resume={run}", "script=other.txt"])
    assert "script= cannot be given with it" in error.message
    assert "load_checkpoint() before train()" in error.hint


def statement_names(scripts) -> list[str]:
    return [statement.name for script in scripts for statement in script.statements]


def test_resume_step_before_first_train():
    script = parse_text("create_model()\nload_checkpoint(4)\ntrain()\nMAX_ITERS = 9\ntrain()\n", "s.txt")
    scripts = add_resume_step([script], "run")
    assert statement_names(scripts) == ["create_model", "load_checkpoint", "load_checkpoint", "train", "MAX_ITERS",
                                        "train"]
    added = scripts[0].statements[2]
    assert added.args == ()
    assert added.location == scripts[0].statements[3].location


def test_resume_step_before_net_train():
    scripts = add_resume_step([parse_text("create_model()\nnet_train('workers.txt')\n", "s.txt")], "run")
    assert statement_names(scripts) == ["create_model", "load_checkpoint", "net_train"]


def test_resume_step_needs_train():
    with pytest.raises(GptpipeError, match="the run's script has no train\\(\\) or net_train\\(\\) to continue"):
        add_resume_step([parse_text("create_model()\n", "s.txt")], "run")


def test_resume_plan_needs_checkpoint(tmp_path):
    run = make_run(tmp_path / "run", ["script=x.txt"])
    (run / "checkpoints").mkdir()
    config = load_config(script=str(run / "script.txt"), resume=str(run),
                         CHECKPOINT_DIR=str(run / "checkpoints"))
    with pytest.raises(GptpipeError) as caught:
        plan_job(config, ["CHECKPOINT_DIR=x"])
    assert f"resume={run}: no checkpoint to continue from in {run / 'checkpoints'}" in caught.value.message
    assert "stopped before its first save" in caught.value.hint


def test_expand_quotes_unusual_paths(tmp_path):
    from hydra.core.override_parser.overrides_parser import OverridesParser

    run = make_run(tmp_path / "my runs,1", ["script=x.txt"])
    argv = expand_resume([f"resume='{run}'"])
    parsed = {override.key_or_group: override for override in OverridesParser.create().parse_overrides(argv[:2])}
    assert parsed["script"].value() == str(run / "script.txt")
    assert not parsed["script"].is_sweep_override()
    assert parsed["CHECKPOINT_DIR"].value() == str((run / "checkpoints").resolve())
