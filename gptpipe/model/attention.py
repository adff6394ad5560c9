"""Causal self-attention with a sliding window, rotary position encoding and per-head query/key norms."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gptpipe.config.dims import HEAD_DIM
from gptpipe.model.quant import QuantizableLinear

ROTARY_BASE = 10000.0
"""Base of the rotary frequencies: channel pair i turns by position * ROTARY_BASE**(-2i/HEAD_DIM) radians."""

FLOAT32_ATTENTION_MAX_LENGTH = 128
"""On CPUs, fragments up to this length run attention in float32 even under bf16.

Measured with torch 2.13 on a 2-core Xeon with AMX, forward plus backward of
scaled_dot_product_attention with 128-channel heads. At 64 and 128 tokens the float32 kernel
took 0.5 to 0.7 times the bf16 kernel's time. At 256 and 512 tokens it took 1.5 to 1.7 times.
"""

_window_masks: dict[tuple[int, int, torch.device], torch.Tensor] = {}


def window_mask(length: int, window: int, device: torch.device | str) -> torch.Tensor:
    """Return the (length, length) boolean mask where query t may attend to keys t-window+1 .. t.

    True means "attend". Masks are built once per (length, window, device) and cached.
    """
    key = (length, window, torch.device(device))
    mask = _window_masks.get(key)
    if mask is None:
        positions = torch.arange(length, device=device)
        distance = positions[:, None] - positions[None, :]  # (query, key): how far the key lies behind
        mask = (distance >= 0) & (distance < window)
        _window_masks[key] = mask
    return mask


def rotary_tables(length: int, device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the rotary tables (cos, signed_sin), each (length, HEAD_DIM), in float32.

    Channel pair (i, i + HEAD_DIM/2) at position t turns by the angle t * ROTARY_BASE**(-2i/HEAD_DIM).
    `signed_sin` contains -sin in its first half and +sin in its second half, so that a rotation is
    x * cos + roll(x, HEAD_DIM/2) * signed_sin (see `apply_rotary`).
    """
    half = HEAD_DIM // 2
    frequencies = ROTARY_BASE ** (-torch.arange(half, dtype=torch.float32, device=device) / half)
    angles = torch.arange(length, dtype=torch.float32, device=device)[:, None] * frequencies[None, :]  # (T, half)
    cos, sin = angles.cos(), angles.sin()
    return torch.cat([cos, cos], dim=-1), torch.cat([-sin, sin], dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, signed_sin: torch.Tensor) -> torch.Tensor:
    """Rotate channel pairs (i, i + HEAD_DIM/2) of `x` (B, T, H, HEAD_DIM) by the angles of positions 0..T-1.

    The first half of each head becomes x1 * cos - x2 * sin, the second half x2 * cos + x1 * sin.
    Rolling the channels by half a head swaps the halves, so the rotation costs three kernels.
    """
    length = x.shape[1]
    cos = cos[:length, None, :].to(x.dtype)  # (T, 1, HEAD_DIM), broadcast over heads
    signed_sin = signed_sin[:length, None, :].to(x.dtype)
    return torch.addcmul(x * cos, x.roll(HEAD_DIM // 2, dims=-1), signed_sin)


class _RMSNormFunction(torch.autograd.Function):
    """RMS norm over the last dimension with a hand-written backward.

    Autograd would otherwise differentiate the decomposed norm (square, mean, rsqrt, two products)
    and run about twice the kernels. On CPUs with small tensors, the kernel count sets the cost.
    The row statistics and the backward are computed in float32, or float64 for float64 inputs.
    """

    @staticmethod
    def forward(ctx, x, weight, eps):
        width = x.shape[-1]
        compute = torch.promote_types(x.dtype, torch.float32)
        # One reduction over the channels, so the rest works on one value per row.
        norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True, dtype=compute)
        rstd = torch.rsqrt(norm.square_().div_(width).add_(eps))
        out = x * rstd.to(x.dtype)
        if weight is not None:
            out = out.mul_(weight)
        ctx.save_for_backward(x, weight, rstd)
        ctx.input_dtype = x.dtype
        return out

    @staticmethod
    def backward(ctx, grad_out):
        x, weight, rstd = ctx.saved_tensors
        compute = torch.promote_types(x.dtype, torch.float32)
        x = x.to(compute)
        # With n = x * rstd and out = n * w, the input gradient is
        #   rstd * (g w - n * mean(g w n)) = s - x * rstd^2 * mean(s x),  where s = g * rstd * w.
        # This form never builds n, and each line below is one pass over the activations.
        scaled = grad_out.to(compute) * rstd
        grad_weight = None
        if weight is not None:
            if ctx.needs_input_grad[1]:
                grad_weight = (scaled * x).reshape(-1, x.shape[-1]).sum(dim=0).to(weight.dtype)
            scaled = scaled * weight.to(compute)
        coefficient = (scaled * x).mean(dim=-1, keepdim=True).mul_(rstd.square()).neg_()
        grad_x = torch.addcmul(scaled, x, coefficient)
        return grad_x.to(ctx.input_dtype), grad_weight, None


class RMSNorm(nn.RMSNorm):
    """nn.RMSNorm whose weight is cast to the input's dtype, with a hand-written backward on CPUs.

    Under bf16 autocast a bf16 input gives a bf16 output. Without `eps` it uses the machine
    epsilon of the input's dtype, as nn.RMSNorm does. On other devices it calls F.rms_norm,
    which has fused kernels there.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight.to(x.dtype) if self.weight is not None else None
        if x.device.type != "cpu" or len(self.normalized_shape) != 1:
            return F.rms_norm(x, self.normalized_shape, weight, self.eps)
        eps = self.eps if self.eps is not None else torch.finfo(x.dtype).eps
        return _RMSNormFunction.apply(x, weight, eps)


class CausalSelfAttention(nn.Module):
    """Multi-head attention over at most `window` tokens behind each position (the position itself included).

    Queries, keys and values are projected from `width` to heads x HEAD_DIM by one fused matrix,
    queries and keys are RMS-normalised per head, and the output is projected back to `width`.
    """

    def __init__(self, width: int, heads: int, window: int, bits: int | None = None):
        super().__init__()
        self.heads = heads
        self.window = window
        self.qkv = QuantizableLinear(width, 3 * heads * HEAD_DIM, bits)
        self.out_proj = QuantizableLinear(heads * HEAD_DIM, width, bits)
        self.q_norm = RMSNorm(HEAD_DIM)
        self.k_norm = RMSNorm(HEAD_DIM)

    def forward(self, x: torch.Tensor, rotary: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        batch, length, _ = x.shape
        qkv = self.qkv(x).view(batch, length, 3, self.heads, HEAD_DIM)
        q, k, v = qkv.unbind(dim=2)  # each (B, T, H, HEAD_DIM)
        q = self.q_norm(q)
        k = self.k_norm(k)
        if rotary is not None:
            q = apply_rotary(q, *rotary)
            k = apply_rotary(k, *rotary)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # (B, H, T, HEAD_DIM)

        if x.device.type == "cpu" and length <= FLOAT32_ATTENTION_MAX_LENGTH and q.dtype in (torch.bfloat16,
                                                                                            torch.float16):
            # Short fragments on a CPU: the float32 kernel is faster than the bf16 one, and these
            # products are a small part of the FLOPs. GPUs keep the 16-bit dtype, the fast path there.
            with torch.autocast("cpu", enabled=False):
                y = self._attend(q.float(), k.float(), v.float()).to(q.dtype)
        else:
            y = self._attend(q, k, v)

        y = y.transpose(1, 2).reshape(batch, length, self.heads * HEAD_DIM)  # (B, T, H * HEAD_DIM)
        return self.out_proj(y)

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Causal attention over the window for q, k, v of shape (B, H, T, HEAD_DIM)."""
        length = q.shape[2]
        if self.window >= length:
            return F.scaled_dot_product_attention(q, k, v, is_causal=True)
        mask = window_mask(length, self.window, q.device)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
