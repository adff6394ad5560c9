"""Input-token dropout and state-channel dropout, sampled by the train loop once per iteration."""

from __future__ import annotations

import torch


def sample_channel_mask(
    width: int, keep: float, generator: torch.Generator | None, device: torch.device | str
) -> torch.Tensor | None:
    """Return a (width,) mask of 0 and 1/keep values (inverted dropout), or None when keep == 1.

    Each channel is kept with probability `keep`. The random draw happens on the generator's
    device and the mask is then moved to `device`.
    """
    if not 0 < keep <= 1:
        raise ValueError(f"channel keep fraction must be in (0, 1], got {keep}")
    if keep == 1:
        return None
    draw_device = generator.device if generator is not None else torch.device(device)
    keep_mask = torch.rand(width, generator=generator, device=draw_device) < keep
    return (keep_mask.to(torch.float32) / keep).to(device)


def drop_tokens(idx: torch.Tensor, keep: float, unknown_token: int, generator: torch.Generator | None) -> torch.Tensor:
    """Return a copy of `idx` where each token is kept with probability `keep`, otherwise replaced by `unknown_token`.

    Only the model input changes; the caller keeps the original targets.
    """
    if not 0 < keep <= 1:
        raise ValueError(f"token keep fraction must be in (0, 1], got {keep}")
    if keep == 1:
        return idx
    draw_device = generator.device if generator is not None else idx.device
    keep_mask = (torch.rand(idx.shape, generator=generator, device=draw_device) < keep).to(idx.device)
    return torch.where(keep_mask, idx, torch.full_like(idx, unknown_token))
