"""The GPT: token embedding, `depth` pre-norm blocks (attention, then feed-forward), final norm, output layer."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from gptpipe.config.dims import ModelDims
from gptpipe.errors import ConfigError
from gptpipe.model.attention import CausalSelfAttention, RMSNorm, rotary_tables
from gptpipe.model.flags import ABS_POSITIONS, GROK_BINARY_OP, TAIL_LOSS, quantization_bits, validate_flags
from gptpipe.model.quant import QuantizableLinear

POSITION_INIT_STD = 0.1
"""Initial std of learned absolute positions, small next to the unit-std token embeddings."""


class FeedForward(nn.Module):
    """width -> ffn_width -> ReLU -> width, without biases."""

    def __init__(self, width: int, ffn_width: int, bits: int | None = None):
        super().__init__()
        self.up = QuantizableLinear(width, ffn_width, bits)
        self.down = QuantizableLinear(ffn_width, width, bits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.relu(self.up(x)))


class Block(nn.Module):
    """One pre-norm transformer block. `channel_mask` (width,) scales both outputs before they join the residual stream."""

    def __init__(self, dims: ModelDims, window: int, bits: int | None):
        super().__init__()
        self.attention_norm = RMSNorm(dims.width)
        self.attention = CausalSelfAttention(dims.width, dims.heads, window, bits)
        self.ffn_norm = RMSNorm(dims.width)
        self.ffn = FeedForward(dims.width, dims.ffn_width, bits)

    def forward(
        self,
        x: torch.Tensor,
        rotary: tuple[torch.Tensor, torch.Tensor] | None,
        channel_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        attention_out = self.attention(self.attention_norm(x), rotary)
        if channel_mask is not None:
            attention_out = attention_out * channel_mask.to(attention_out.dtype)
        x = x + attention_out

        ffn_out = self.ffn(self.ffn_norm(x))
        if channel_mask is not None:
            ffn_out = ffn_out * channel_mask.to(ffn_out.dtype)
        return x + ffn_out


class GPT(nn.Module):
    """Decoder-only transformer built from MODEL_DIMS and MPF_* flags.

    Block i attends over min(64, w) tokens when i is even and over w tokens when i is odd.
    Positions are encoded by rotary embeddings, or with MPF_ABS_POSITIONS by a learned table of
    `max_len` rows. The output layer is a separate matrix, not tied to the token embedding.
    """

    def __init__(self, dims: ModelDims, vocab_size: int, flags: Iterable[str] = (), max_len: int = 4096):
        super().__init__()
        if vocab_size < 1:
            raise ConfigError(f"vocabulary size must be at least 1, got {vocab_size}; check the tokenizer")
        if max_len < 1:
            raise ConfigError(f"max_len must be at least 1 token, got {max_len}; pass the fragment length")
        self.dims = dims
        self.vocab_size = vocab_size
        self.max_len = max_len
        self.flags = validate_flags(flags)
        bits = quantization_bits(self.flags)

        self.token_embedding = nn.Embedding(vocab_size, dims.width)
        self.position_embedding = nn.Embedding(max_len, dims.width) if ABS_POSITIONS in self.flags else None
        self.blocks = nn.ModuleList(
            Block(dims, dims.local_window if index % 2 == 0 else dims.window, bits) for index in range(dims.depth)
        )
        self.final_norm = RMSNorm(dims.width)
        self.output = nn.Linear(dims.width, vocab_size, bias=False)

        if self.position_embedding is None:
            cos, sin = rotary_tables(max_len)
            self.register_buffer("rotary_cos", cos, persistent=False)
            self.register_buffer("rotary_sin", sin, persistent=False)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Initialise weights so the residual stream keeps unit scale at any depth.

        Input projections get std 1/sqrt(fan_in). The projections that write into the residual
        stream get a further factor 1/sqrt(2 * depth), because 2 * depth of them are summed. The
        output layer starts at zero, so the initial prediction is uniform over the vocabulary.
        """
        residual_scale = 1 / math.sqrt(2 * self.dims.depth)
        for block in self.blocks:
            for linear in (block.attention.qkv, block.ffn.up):
                nn.init.normal_(linear.weight, std=1 / math.sqrt(linear.in_features))
            for linear in (block.attention.out_proj, block.ffn.down):
                nn.init.normal_(linear.weight, std=residual_scale / math.sqrt(linear.in_features))
        nn.init.normal_(self.token_embedding.weight, std=1.0)
        if self.position_embedding is not None:
            nn.init.normal_(self.position_embedding.weight, std=POSITION_INIT_STD)
        nn.init.zeros_(self.output.weight)
        for module in self.modules():
            if isinstance(module, nn.RMSNorm):
                nn.init.ones_(module.weight)

    def hidden_states(self, idx: torch.Tensor, channel_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Return the final-normed state (B, T, width) for token ids `idx` (B, T)."""
        length = idx.shape[1]
        x = self.token_embedding(idx)  # (B, T, width)
        rotary = None
        if self.position_embedding is not None:
            if length > self.max_len:
                raise ConfigError(
                    f"fragment of {length} tokens is longer than the {self.max_len} learned positions of this "
                    "model (MPF_ABS_POSITIONS); use shorter fragments or create the model with a larger max_len"
                )
            x = x + self.position_embedding.weight[:length]
        else:
            if length > self.rotary_cos.shape[0]:
                self._extend_rotary(length)
            rotary = (self.rotary_cos, self.rotary_sin)

        for block in self.blocks:
            x = block(x, rotary, channel_mask)
        return self.final_norm(x)

    def _extend_rotary(self, length: int) -> None:
        cos, sin = rotary_tables(length, device=self.rotary_cos.device)
        self.rotary_cos = cos
        self.rotary_sin = sin

    def loss_positions(self, length: int) -> slice:
        """Return the positions the loss covers in a fragment of `length` tokens, as the flags select."""
        if GROK_BINARY_OP in self.flags:
            return slice(length - 1, length)
        if TAIL_LOSS in self.flags:
            return slice(length // 2, length)
        return slice(0, length)

    def forward(
        self,
        idx: torch.Tensor,
        targets: torch.Tensor | None = None,
        channel_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Return logits (B, T, vocab) and, with `targets` (B, T), the mean cross-entropy in nats over the loss positions."""
        logits = self.output(self.hidden_states(idx, channel_mask))
        if targets is None:
            return logits, None
        selected = self.loss_positions(idx.shape[1])
        loss = F.cross_entropy(
            logits[:, selected].float().reshape(-1, self.vocab_size),
            targets[:, selected].reshape(-1),
        )
        return logits, loss

    @torch.no_grad()
    def evaluate(self, idx: torch.Tensor, targets: torch.Tensor) -> dict[str, float | int]:
        """Return the summed loss in nats ("loss_sum") and the position count ("count") over the loss positions.

        With MPF_GROK_BINARY_OP the dict also has "correct": how many of those positions the
        model predicts exactly (argmax). Sums, not means, so callers can add them over batches and ranks.
        """
        logits, _ = self.forward(idx)
        selected = self.loss_positions(idx.shape[1])
        logits = logits[:, selected].float().reshape(-1, self.vocab_size)
        selected_targets = targets[:, selected].reshape(-1)
        result: dict[str, float | int] = {
            "loss_sum": F.cross_entropy(logits, selected_targets, reduction="sum").item(),
            "count": selected_targets.numel(),
        }
        if GROK_BINARY_OP in self.flags:
            result["correct"] = int((logits.argmax(dim=-1) == selected_targets).sum().item())
        return result


def parameter_counts(model: GPT) -> tuple[int, int]:
    """Return (all parameters, parameters without the token and position embedding tables).

    The output layer is untied from the token embedding, so it counts in both numbers.
    """
    total = sum(p.numel() for p in model.parameters())
    embeddings = model.token_embedding.weight.numel()
    if model.position_embedding is not None:
        embeddings += model.position_embedding.weight.numel()
    return total, total - embeddings
