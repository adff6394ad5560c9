"""Simulated 2-bit and 4-bit weights."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from gptpipe.config.dims import ModelDims
from gptpipe.model import GPT
from gptpipe.model.quant import QUANT_GROUP, quantize_weight


@pytest.mark.parametrize("bits, levels", [(2, 4), (4, 16)])
def test_quantize_levels_per_group(bits, levels):
    torch.manual_seed(0)
    weight = torch.randn(8, 2 * QUANT_GROUP)
    rounded = quantize_weight(weight, bits)
    for row in range(8):
        for group in range(2):
            values = rounded[row, group * QUANT_GROUP : (group + 1) * QUANT_GROUP].unique()
            assert len(values) <= levels, f"row {row} group {group}"


@pytest.mark.parametrize("bits, levels", [(2, 4), (4, 16)])
def test_quantize_levels_per_row_when_not_divisible(bits, levels):
    torch.manual_seed(0)
    weight = torch.randn(8, 100)
    rounded = quantize_weight(weight, bits)
    for row in range(8):
        assert len(rounded[row].unique()) <= levels, f"row {row}"


@pytest.mark.parametrize("bits", [2, 4])
def test_quantize_error_bounded(bits):
    torch.manual_seed(0)
    weight = torch.randn(4, QUANT_GROUP)
    rounded = quantize_weight(weight, bits)
    half_step = (weight.amax(dim=1) - weight.amin(dim=1)) / (2**bits - 1) / 2
    assert ((rounded - weight).abs().amax(dim=1) <= half_step + 1e-6).all()


def test_quantize_straight_through_gradient():
    weight = torch.randn(4, QUANT_GROUP, requires_grad=True)
    upstream = torch.randn(4, QUANT_GROUP)
    (quantize_weight(weight, 2) * upstream).sum().backward()
    assert torch.equal(weight.grad, upstream)


@pytest.mark.parametrize("flag, bits", [("MPF_SIM_QUANT_2BIT", 2), ("MPF_SIM_QUANT_4BIT", 4)])
def test_gpt_uses_quantized_weights(flag, bits):
    torch.manual_seed(0)
    model = GPT(ModelDims.decode("e128h1d2"), 16, [flag])
    qkv = model.blocks[0].attention.qkv
    x = torch.randn(2, 5, 128)
    assert torch.equal(qkv(x), F.linear(x, quantize_weight(qkv.weight, bits)))


def test_gpt_full_precision_without_flag():
    model = GPT(ModelDims.decode("e128h1d2"), 16)
    assert all(block.attention.qkv.bits is None for block in model.blocks)


@pytest.mark.parametrize("flag", ["MPF_SIM_QUANT_2BIT", "MPF_SIM_QUANT_4BIT"])
def test_gpt_quant_gradients_reach_master_weights(flag):
    torch.manual_seed(0)
    model = GPT(ModelDims.decode("e128h1d2"), 16, [flag])
    torch.nn.init.normal_(model.output.weight, std=0.1)
    tokens = torch.randint(0, 16, (2, 12))
    _, loss = model(tokens, tokens)
    loss.backward()
    for name, param in model.blocks.named_parameters():
        if param.ndim == 2:
            assert param.grad is not None and param.grad.abs().sum() > 0, name
