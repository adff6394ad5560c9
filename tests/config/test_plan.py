"""The plan: precedence of values, sequential semantics and validation errors."""

from __future__ import annotations

import pytest

from config_loading import load_config
from gptpipe.config.plan import build_plan, decode_dims
from gptpipe.dsl import parse_text
from gptpipe.errors import GptpipeError


def plan_for(text, overridden=(), **config_overrides):
    config = load_config(**config_overrides)
    return build_plan([parse_text(text, "s.txt")], config, overridden)


def plan_error(text, **config_overrides) -> GptpipeError:
    with pytest.raises(GptpipeError) as caught:
        plan_for(text, **config_overrides)
    return caught.value


def test_defaults_then_assignments():
    plan = plan_for("MAX_ITERS = 50\ncreate_model()\ntrain()")
    assert plan.steps[1].values["MAX_ITERS"] == 50
    assert plan.steps[1].values["EVAL_INTERVAL"] == 100


def test_sequential_semantics():
    plan = plan_for("MAX_ITERS = 10\ncreate_model()\ntrain()\nMAX_ITERS = 20\ntrain()")
    assert [step.values["MAX_ITERS"] for step in plan.steps] == [10, 10, 20]


def test_override_beats_every_assignment():
    plan = plan_for("MAX_ITERS = 10\ncreate_model()\nMAX_ITERS = 20\ntrain()", overridden=["MAX_ITERS"],
                    MAX_ITERS=7)
    assert [step.values["MAX_ITERS"] for step in plan.steps] == [7, 7]
    assert [loc.line for loc in plan.overridden_assignments["MAX_ITERS"]] == [1, 3]


def test_alias_sets_variable():
    plan = plan_for("EVAL_BATCH_COUNT = 3\ncreate_model()")
    assert plan.steps[0].values["EVAL_ITERS"] == 3


@pytest.mark.parametrize("text, expected", [("true", True), ("No", False), ("YES", True), ("0", False),
                                            ("1", True), ("FALSE", False)])
def test_boolean_spellings(text, expected):
    plan = plan_for(f"SAVE_MODEL = {text}\ncreate_model()")
    assert plan.steps[0].values["SAVE_MODEL"] is expected


def test_subtree_field_wins_over_string():
    config = load_config(**{"model.depth": 8})
    dims = decode_dims("MODEL_DIMS", {"MODEL_DIMS": "e256d4"}, config)
    assert dims.depth == 8


def test_interpolation_from_config(tmp_path):
    (tmp_path / "a.txt").write_text("hello world\n")
    plan = plan_for("load_text('${data_dir}/a.txt')", data_dir=str(tmp_path))
    assert plan.steps[0].args[0] == f"{tmp_path}/a.txt"


def test_default_corpus_flag():
    assert plan_for("create_model()").uses_default_corpus


@pytest.mark.parametrize(
    "text, line, col, message",
    [
        ("MAX_ITER = 5", 1, 1, "unknown variable MAX_ITER; did you mean MAX_ITERS?"),
        ("trian()", 1, 1, "unknown operation trian(); did you mean train?"),
        ("MAX_ITERS = 'ten'", 1, 13, "MAX_ITERS expects a whole number, got the string 'ten'"),
        ("MAX_ITERS = 1.5", 1, 13, "MAX_ITERS expects a whole number"),
        ("MAX_ITERS = -3", 1, 13, "MAX_ITERS must be >= 0"),
        ("SAVE_MODEL = maybe", 1, 14, "SAVE_MODEL expects a boolean"),
        ("SAVE_MODEL = 2", 1, 14, "SAVE_MODEL expects a boolean"),
        ("MODEL_DIMS = e256", 1, 14, "MODEL_DIMS expects a quoted string, got the name e256"),
        ("MODEL_DIMS = 5", 1, 14, "MODEL_DIMS expects a quoted string"),
        ("MODEL_DIMS = 'e500'", 1, 14, "width e500 is not a multiple of 128"),
        ("TRAIN_CONFIG = 'b16ww1024'", 1, 16, "key 'ww' was the wide attention window"),
        ("train()", 1, 1, "train() needs a model"),
        ("create_model()\nMODEL_DIMS = 'e128d2'", 2, 1, "MODEL_DIMS is assigned after the model was created"),
        ("create_model(MPF_NOPE)", 1, 14, "unknown flag MPF_NOPE for create_model()"),
        ("create_model('MPF_TAIL_LOSS')", 1, 14, "expects a flag"),
        ("create_model()\ntrain(5)", 2, 1, "train() takes 0 arguments, got 1"),
        ("load_text()", 1, 1, "load_text() takes 1 argument, got 0"),
        ("load_text(5)", 1, 11, "argument path of load_text() expects a file, got 5"),
        ("load_text('/no/such/file.txt')", 1, 11, "file not found: /no/such/file.txt"),
        ("load_text('${nope}/x.txt')", 1, 12, "interpolation in '${nope}/x.txt' does not resolve"),
        ("load_text('${data_path}')", 1, 12, "does not resolve"),
        ("USE_PPM = 1", 1, 1, "USE_PPM is not supported"),
        ("connect_data_server('h')", 1, 1, "connect_data_server() is not supported"),
        ("TRAIN_CONFIG = 'b3'\nDEVICE_COUNT = 2\ncreate_model()\ntrain()", 4, 1, "not divisible by DEVICE_COUNT 2"),
    ],
)
def test_plan_errors(text, line, col, message):
    error = plan_error(text)
    assert message in error.message
    assert (error.location.line, error.location.col) == (line, col)


def test_subtree_error_blames_command_line():
    script = "make_binary_op_dataset(97, '+', 0.5)\nMODEL_DIMS = 'e128h1d2'\ncreate_model()"
    error = plan_error(script, **{"model.depth": 5})
    assert "invalid MODEL_DIMS 'e128h1d5" in error.message
    assert "(with model.depth=5 from the command line)" in error.message
    assert error.location is None
    assert "model.*" in error.hint


def test_subtree_checks_default_when_never_set():
    error = plan_error("create_model()", **{"model.depth": 5})
    assert "depth d5 is odd" in error.message


@pytest.mark.parametrize("text", ["MAX_ITERS = 'lots'\ncreate_model()", "MAX_ITERS = 1.5\ncreate_model()"])
def test_overridden_assignment_still_checked(text):
    with pytest.raises(GptpipeError) as caught:
        plan_for(text, overridden=["MAX_ITERS"], MAX_ITERS=7)
    assert caught.value.location.line == 1
    assert "MAX_ITERS expects" in caught.value.message
    assert "the command line sets MAX_ITERS, but the script's assignment must be valid too" in caught.value.hint


def test_overridden_interpolation_not_resolved():
    plan = plan_for("CHECKPOINT_DIR = '${nope}/ckpt'\ncreate_model()", overridden=["CHECKPOINT_DIR"],
                    CHECKPOINT_DIR="/tmp/elsewhere")
    assert plan.steps[0].values["CHECKPOINT_DIR"] == "/tmp/elsewhere"


@pytest.mark.parametrize("name, hint", [
    ("data_pth", "did you mean ${data_path}? A new name needs a + on the command line: +data_pth="),
    ("zzz", "a name that is not a setting needs a + on the command line: +zzz="),
    ("data_path", "set it on the command line, e.g. data_path="),
])
def test_unresolved_interpolation_hint(name, hint):
    error = plan_error(f"make_char_dataset('${{{name}}}')")
    assert hint in error.hint


def test_folder_given_for_file(tmp_path):
    error = plan_error(f"load_text('{tmp_path}')")
    assert "expects a file, but" in error.message
