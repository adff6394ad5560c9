"""Causal self-attention with a sliding window, rotary position encoding and per-head query/key norms."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gptpipe.config.dims import HEAD_DIM
from gptpipe.model.quant import QuantizableLinear

ROTARY_BASE = 10000.0
"""Base of the rotary frequencies: channel pair i turns by position * ROTARY_BASE**(-2i/HEAD_DIM) radians."""

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
    """Return cos and sin tables, each (length, HEAD_DIM), for rotating the two halves of a head's channels."""
    half = HEAD_DIM // 2
    frequencies = ROTARY_BASE ** (-torch.arange(half, dtype=torch.float32, device=device) / half)
    angles = torch.arange(length, dtype=torch.float32, device=device)[:, None] * frequencies[None, :]  # (T, half)
    angles = torch.cat([angles, angles], dim=-1)  # (T, HEAD_DIM)
    return angles.cos(), angles.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate channel pairs (i, i + HEAD_DIM/2) of `x` (B, T, H, HEAD_DIM) by the angles of positions 0..T-1."""
    length = x.shape[1]
    cos = cos[:length, None, :].to(x.dtype)  # (T, 1, HEAD_DIM), broadcast over heads
    sin = sin[:length, None, :].to(x.dtype)
    first, second = x.chunk(2, dim=-1)
    rotated_half = torch.cat([-second, first], dim=-1)
    return x * cos + rotated_half * sin


class RMSNorm(nn.RMSNorm):
    """nn.RMSNorm that casts its weight to the input's dtype, so bf16 autocast keeps the fused kernel."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight.to(x.dtype) if self.weight is not None else None
        return F.rms_norm(x, self.normalized_shape, weight, self.eps)


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

        if self.window >= length:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            mask = window_mask(length, self.window, x.device)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)

        y = y.transpose(1, 2).reshape(batch, length, self.heads * HEAD_DIM)  # (B, T, H * HEAD_DIM)
        return self.out_proj(y)
