"""Simulated low-bit weights (MPF_SIM_QUANT_2BIT / MPF_SIM_QUANT_4BIT).

In the forward pass each weight matrix of the transformer blocks is rounded to 2**bits evenly
spaced levels per row and group of QUANT_GROUP consecutive input columns. The levels span the
group's minimum to maximum, so each group has its own scale and offset. The
backward pass treats the rounding as the identity (straight-through estimator), so the
full-precision master weights receive the gradients and the optimizer updates them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

QUANT_GROUP = 128
"""Input columns that share one scale and offset. A row whose width is not a multiple of it forms one group."""


def quantize_weight(weight: torch.Tensor, bits: int) -> torch.Tensor:
    """Return `weight` (out, in) rounded to 2**bits levels per row and group, with straight-through gradients."""
    rows, columns = weight.shape
    group = QUANT_GROUP if columns % QUANT_GROUP == 0 else columns
    grouped = weight.reshape(rows, columns // group, group)  # (out, groups, group)

    low = grouped.amin(dim=-1, keepdim=True)
    high = grouped.amax(dim=-1, keepdim=True)
    step = (high - low).clamp_min(torch.finfo(weight.dtype).tiny) / (2**bits - 1)
    levels = torch.round((grouped - low) / step)
    rounded = (levels * step + low).reshape(rows, columns)

    # Forward: exactly the rounded values, because weight - weight.detach() is exactly 0.
    # Backward: the gradient of the identity.
    return rounded.detach() + (weight - weight.detach())


class QuantizableLinear(nn.Linear):
    """nn.Linear without bias whose forward uses simulated `bits`-bit weights when `bits` is set."""

    def __init__(self, in_features: int, out_features: int, bits: int | None = None):
        super().__init__(in_features, out_features, bias=False)
        self.bits = bits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bits is None:
            return F.linear(x, self.weight)
        return F.linear(x, quantize_weight(self.weight, self.bits))

    def extra_repr(self) -> str:
        return super().extra_repr() + (f", bits={self.bits}" if self.bits is not None else "")
