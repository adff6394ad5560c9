"""Precision choice on CPUs with and without native bf16 matrix instructions."""

from __future__ import annotations

import logging

import pytest
from config_loading import load_config

from gptpipe.runtime import fabric_setup
from gptpipe.runtime.state import RunState
from script_runs import train_script


@pytest.mark.parametrize("native_bf16, expected", [(True, "bf16-mixed"), (False, "32-true")])
def test_auto_precision_follows_the_cpu(monkeypatch, native_bf16, expected):
    monkeypatch.setattr(fabric_setup, "cpu_supports_bf16", lambda: native_bf16)
    assert fabric_setup.resolve_precision("auto", "cpu") == expected
    assert fabric_setup.resolve_precision("32-true", "cpu") == "32-true"


@pytest.mark.parametrize("native_bf16", [True, False])
def test_bf16_on_a_cpu_without_native_bf16_warns(monkeypatch, caplog, tmp_path, native_bf16):
    monkeypatch.setattr(fabric_setup, "cpu_supports_bf16", lambda: native_bf16)
    state = RunState(config=load_config(precision="bf16-mixed", accelerator="cpu"), run_dir=tmp_path)
    with caplog.at_level(logging.WARNING, logger="gptpipe"):
        fabric_setup.create_fabric(state)
    assert state.precision == "bf16-mixed"
    warned = "without native bf16 matrix instructions" in caplog.text
    assert warned != native_bf16


def test_train_log_names_the_precision(run, text_file, caplog):
    with caplog.at_level(logging.INFO, logger="gptpipe"):
        run(train_script(text_file, 1, 1))
    assert "optimizer muon, precision 32-true, 1 device(s) on cpu" in caplog.text
