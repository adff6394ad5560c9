"""The hand-written RMS norm, the rolled rotary encoding and float32 attention match their plain definitions."""

from __future__ import annotations

import pytest
import torch

from gptpipe.model.attention import HEAD_DIM, CausalSelfAttention, RMSNorm, apply_rotary, rotary_tables


def reference_rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps) * weight


@pytest.mark.parametrize("dtype, tolerance", [(torch.float64, 1e-12), (torch.float32, 1e-5), (torch.bfloat16, 5e-2)])
@pytest.mark.parametrize("eps", [None, 1e-5])
def test_rms_norm_matches_definition(dtype, tolerance, eps):
    torch.manual_seed(0)
    norm = RMSNorm(32, eps=eps)
    with torch.no_grad():
        norm.weight.normal_()
    x = torch.randn(3, 5, 32, dtype=dtype, requires_grad=True)
    out = norm(x)
    upstream = torch.randn(out.shape, dtype=torch.float64)
    grad_x, grad_weight = torch.autograd.grad((out.double() * upstream).sum(), (x, norm.weight))

    x64 = x.detach().double().requires_grad_()
    weight64 = norm.weight.detach().double().requires_grad_()
    expected = reference_rms_norm(x64, weight64, eps if eps is not None else torch.finfo(dtype).eps)
    expected_x, expected_weight = torch.autograd.grad((expected * upstream).sum(), (x64, weight64))

    assert out.dtype == dtype
    assert grad_x.dtype == dtype
    assert grad_weight.dtype == torch.float32
    scale = expected.abs().max()
    assert (out.double() - expected).abs().max() <= tolerance * scale
    assert (grad_x.double() - expected_x).abs().max() <= tolerance * expected_x.abs().max()
    assert (grad_weight.double() - expected_weight).abs().max() <= max(tolerance, 1e-6) * expected_weight.abs().max()


def test_rms_norm_without_weight():
    norm = RMSNorm(16, eps=1e-6, elementwise_affine=False)
    x = torch.randn(4, 16, dtype=torch.float64, requires_grad=True)
    out = norm(x)
    out.sum().backward()
    assert torch.allclose(out, x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6))
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_rotary_matches_rotate_half_definition():
    cos, signed_sin = rotary_tables(10)
    x = torch.randn(2, 10, 3, HEAD_DIM)
    half = HEAD_DIM // 2
    sin = signed_sin[:, half:]
    assert torch.allclose(signed_sin[:, :half], -sin)
    assert torch.allclose(cos[:, :half], cos[:, half:])
    first, second = x[..., :half], x[..., half:]
    angle_cos, angle_sin = cos[:, None, :half], sin[:, None, :]
    expected = torch.cat([first * angle_cos - second * angle_sin, second * angle_cos + first * angle_sin], dim=-1)
    assert torch.allclose(apply_rotary(x, cos, signed_sin), expected, atol=1e-6)
    # A rotation keeps the length of each head's vector.
    rotated = apply_rotary(x, cos, signed_sin)
    assert torch.allclose(rotated.norm(dim=-1), x.norm(dim=-1), atol=1e-5)


def test_bf16_attention_matches_float32():
    torch.manual_seed(0)
    attention = CausalSelfAttention(HEAD_DIM, 1, window=8)
    x = torch.randn(2, 8, HEAD_DIM)
    rotary = rotary_tables(8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = attention(x, rotary)
    full = attention(x, rotary)
    assert mixed.dtype == torch.bfloat16
    assert torch.allclose(mixed.float(), full, atol=5e-2, rtol=5e-2)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float64])
def test_attention_keeps_model_dtype(dtype):
    """A model converted to bf16 (precision=bf16-true) or float64 computes and returns its own dtype."""
    torch.manual_seed(0)
    attention = CausalSelfAttention(HEAD_DIM, 1, window=4).to(dtype)
    x = torch.randn(2, 8, HEAD_DIM, dtype=dtype, requires_grad=True)
    out = attention(x, rotary_tables(8))
    out.float().sum().backward()
    assert out.dtype == dtype
    assert x.grad.dtype == dtype


def test_attention_window_masks_far_keys():
    torch.manual_seed(0)
    attention = CausalSelfAttention(HEAD_DIM, 1, window=2)
    x = torch.randn(1, 6, HEAD_DIM, requires_grad=True)
    out = attention(x, rotary_tables(6))
    out[0, 5].sum().backward()
    reached = x.grad[0].abs().sum(dim=-1) > 0
    assert reached.tolist() == [False, False, False, False, True, True]
