"""Learning-rate schedule."""

from __future__ import annotations

import pytest
import torch

from gptpipe.config.dims import DropConfig
from gptpipe.optim import learning_rate, set_learning_rate


@pytest.mark.parametrize(
    "drop, iteration, max_iters, expected",
    [
        ("lr0.01slow100", 0, 1000, 0.0001),
        ("lr0.01slow100", 49, 1000, 0.005),
        ("lr0.01slow100", 99, 1000, 0.01),
        ("lr0.01slow100", 999, 1000, 0.01),
        ("lr0.01slow0", 0, 1000, 0.01),
        ("lr0.01slow10tail4", 500, 1000, 0.01),
        ("lr0.01slow10tail4", 750, 1000, 0.01),
        ("lr0.01slow10tail4", 875, 1000, 0.005),
        ("lr0.01slow10tail4", 1000, 1000, 0.0),
        ("lr0.01slow10tail1", 0, 1000, 0.001),
        ("lr0.01slow10tail1", 500, 1000, 0.005),
        ("lr0.01slow10tail2", 1200, 1000, 0.0),
    ],
)
def test_learning_rate(drop, iteration, max_iters, expected):
    value = learning_rate(iteration, DropConfig.decode(drop), max_iters)
    assert value == pytest.approx(expected, abs=1e-12)


def test_set_learning_rate_scales_groups():
    first, second = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    optimizer = torch.optim.SGD([{"params": [first], "lr_scale": 0.5}, {"params": [second]}], lr=1.0)
    set_learning_rate(optimizer, 0.02)
    assert [group["lr"] for group in optimizer.param_groups] == [0.01, 0.02]


@pytest.mark.parametrize(
    "drop, iteration, progress, expected",
    [
        ("lr0.01slow10tail1", 100, 0.5, 0.005),  # half the budget spent at 10% of MAX_ITERS
        ("lr0.01slow10tail4", 100, 0.875, 0.005),
        ("lr0.01slow10tail4", 100, 0.7, 0.01),
        ("lr0.01slow10tail1", 100, 1.0, 0.0),
        ("lr0.01slow10", 100, 0.99, 0.01),  # no tail: the budget does not change the rate
        ("lr0.01slow100tail1", 49, 0.5, 0.0025),  # warm-up and decay multiply
    ],
)
def test_learning_rate_follows_progress(drop, iteration, progress, expected):
    value = learning_rate(iteration, DropConfig.decode(drop), 1000, progress)
    assert value == pytest.approx(expected)


def test_progress_defaults_to_iteration_share():
    drop = DropConfig.decode("lr0.01slow10tail2")
    for iteration in (0, 300, 600, 900, 1000):
        assert learning_rate(iteration, drop, 1000) == pytest.approx(learning_rate(iteration, drop, 1000,
                                                                                   iteration / 1000))
