"""GPT: shapes, attention windows, causality, loss positions, channel mask, flags, autocast."""

from __future__ import annotations

import math

import pytest
import torch

from gptpipe.config.dims import ModelDims
from gptpipe.errors import ConfigError
from gptpipe.model import GPT, MODEL_FLAGS, parameter_counts
from gptpipe.model.attention import CausalSelfAttention, window_mask

VOCAB = 32


def make_model(dims: str = "e128h1d2w8relu1", flags: tuple[str, ...] = (), max_len: int = 64) -> GPT:
    torch.manual_seed(0)
    model = GPT(ModelDims.decode(dims), VOCAB, flags, max_len=max_len)
    # The output layer starts at zero; give it weights so logits depend on the input.
    torch.nn.init.normal_(model.output.weight, std=0.1)
    return model


def random_tokens(batch: int = 2, length: int = 16, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, VOCAB, (batch, length), generator=generator)


@pytest.mark.parametrize("dims", ["e128h1d2", "e256h2d4w128relu2", "e384h3d2"])
def test_gpt_logits_shape(dims):
    model = GPT(ModelDims.decode(dims), VOCAB, max_len=16)
    logits, loss = model(random_tokens(batch=3, length=10))
    assert logits.shape == (3, 10, VOCAB)
    assert loss is None


def test_gpt_initial_loss_uniform():
    model = GPT(ModelDims.decode("e128h1d2"), VOCAB)
    tokens = random_tokens()
    _, loss = model(tokens, tokens)
    assert loss.item() == pytest.approx(math.log(VOCAB), abs=1e-5)


@pytest.mark.parametrize(
    "length, window",
    [(10, 3), (10, 1), (10, 10), (70, 64)],
)
def test_window_mask_rows(length, window):
    mask = window_mask(length, window, "cpu")
    for query in range(length):
        expected = [max(0, query - window + 1) <= key <= query for key in range(length)]
        assert mask[query].tolist() == expected


@pytest.mark.parametrize("window, length", [(3, 12), (64, 12), (12, 12)])
def test_attention_sees_exact_window(window, length):
    torch.manual_seed(0)
    attention = CausalSelfAttention(width=128, heads=2, window=window)
    x = torch.randn(1, length, 128, requires_grad=True)
    for query in range(length):
        x.grad = None
        attention(x)[0, query].sum().backward()
        touched = x.grad[0].abs().sum(dim=-1) > 0
        expected = [max(0, query - window + 1) <= key <= query for key in range(length)]
        assert touched.tolist() == expected, f"query {query}"


def test_gpt_block_windows_alternate():
    model = GPT(ModelDims.decode("e128h1d4w256"), VOCAB)
    assert [block.attention.window for block in model.blocks] == [64, 256, 64, 256]


def test_gpt_block_windows_short_w():
    model = GPT(ModelDims.decode("e128h1d2w16"), VOCAB)
    assert [block.attention.window for block in model.blocks] == [16, 16]


@pytest.mark.parametrize("flags", [(), ("MPF_ABS_POSITIONS",)])
def test_gpt_causal(flags):
    model = make_model(flags=flags)
    tokens = random_tokens(length=20)
    changed = tokens.clone()
    changed[:, 12] = (changed[:, 12] + 1) % VOCAB
    before, _ = model(tokens)
    after, _ = model(changed)
    assert torch.equal(before[:, :12], after[:, :12])
    assert not torch.allclose(before[:, 12:], after[:, 12:])


def test_gpt_window_limits_receptive_field():
    # d2w4: block 0 sees 4 tokens, block 1 sees 4 more, so output t depends on inputs t-6 .. t.
    model = make_model("e128h1d2w4relu1")
    tokens = random_tokens(length=20)
    changed = tokens.clone()
    changed[:, 5] = (changed[:, 5] + 1) % VOCAB
    before, _ = model(tokens)
    after, _ = model(changed)
    assert torch.equal(before[:, 12:], after[:, 12:])
    assert not torch.allclose(before[:, 5:12], after[:, 5:12])


def test_tail_loss_ignores_first_half():
    model = make_model(flags=("MPF_TAIL_LOSS",))
    tokens = random_tokens(length=16)
    targets = random_tokens(length=16, seed=2)
    changed = targets.clone()
    changed[:, :8] = (changed[:, :8] + 1) % VOCAB
    _, loss = model(tokens, targets)
    _, loss_changed_head = model(tokens, changed)
    assert loss.item() == loss_changed_head.item()


def test_tail_loss_uses_second_half():
    model = make_model(flags=("MPF_TAIL_LOSS",))
    tokens = random_tokens(length=16)
    targets = random_tokens(length=16, seed=2)
    changed = targets.clone()
    changed[:, 8] = (changed[:, 8] + 1) % VOCAB
    _, loss = model(tokens, targets)
    _, loss_changed_tail = model(tokens, changed)
    assert loss.item() != loss_changed_tail.item()


def test_grok_loss_last_position_only():
    model = make_model(flags=("MPF_GROK_BINARY_OP",))
    tokens = random_tokens(length=16)
    targets = random_tokens(length=16, seed=2)
    logits, loss = model(tokens, targets)
    expected = torch.nn.functional.cross_entropy(logits[:, -1], targets[:, -1])
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_grok_loss_ignores_earlier_targets():
    model = make_model(flags=("MPF_GROK_BINARY_OP",))
    tokens = random_tokens(length=16)
    targets = random_tokens(length=16, seed=2)
    changed = targets.clone()
    changed[:, :-1] = (changed[:, :-1] + 1) % VOCAB
    _, loss = model(tokens, targets)
    _, loss_changed = model(tokens, changed)
    assert loss.item() == loss_changed.item()


@pytest.mark.parametrize("flags, count", [((), 32), (("MPF_TAIL_LOSS",), 16), (("MPF_GROK_BINARY_OP",), 2)])
def test_evaluate_sums_match_loss(flags, count):
    model = make_model(flags=flags)
    tokens = random_tokens(length=16)
    targets = random_tokens(length=16, seed=2)
    _, loss = model(tokens, targets)
    result = model.evaluate(tokens, targets)
    assert result["count"] == count
    assert result["loss_sum"] / result["count"] == pytest.approx(loss.item(), rel=1e-5)


def test_evaluate_grok_counts_correct():
    model = make_model(flags=("MPF_GROK_BINARY_OP",))
    tokens = random_tokens(length=16)
    logits, _ = model(tokens)
    targets = random_tokens(length=16, seed=2)
    targets[0, -1] = logits[0, -1].argmax()
    targets[1, -1] = (logits[1, -1].argmax() + 1) % VOCAB
    assert model.evaluate(tokens, targets)["correct"] == 1


def test_evaluate_without_grok_has_no_correct():
    model = make_model()
    tokens = random_tokens()
    assert "correct" not in model.evaluate(tokens, tokens)


def test_channel_mask_same_channels_every_block():
    model = make_model("e128h1d4w8relu1")
    tokens = random_tokens()
    mask = torch.full((128,), 2.0)
    dropped = torch.arange(0, 128, 3)
    mask[dropped] = 0.0
    states = []
    hooks = [block.register_forward_hook(lambda _m, _i, out: states.append(out)) for block in model.blocks]
    model(tokens, channel_mask=mask)
    for hook in hooks:
        hook.remove()
    embedded = model.token_embedding(tokens)
    for depth, state in enumerate(states):
        assert torch.equal(state[..., dropped], embedded[..., dropped]), f"block {depth}"


def test_channel_mask_scales_block_outputs():
    model = make_model("e128h1d4w8relu1")
    tokens = random_tokens()
    generator = torch.Generator().manual_seed(3)
    mask = (torch.rand(128, generator=generator) < 0.5).float() * 2.0
    raw_outputs: dict[str, list[torch.Tensor]] = {"attention": [], "ffn": [], "block": []}
    hooks = []
    for block in model.blocks:
        hooks.append(block.attention.register_forward_hook(lambda _m, _i, out: raw_outputs["attention"].append(out)))
        hooks.append(block.ffn.register_forward_hook(lambda _m, _i, out: raw_outputs["ffn"].append(out)))
        hooks.append(block.register_forward_hook(lambda _m, _i, out: raw_outputs["block"].append(out)))
    model(tokens, channel_mask=mask)
    for hook in hooks:
        hook.remove()
    state = model.token_embedding(tokens)
    for depth in range(4):
        expected = state + mask * raw_outputs["attention"][depth] + mask * raw_outputs["ffn"][depth]
        assert torch.allclose(raw_outputs["block"][depth], expected, atol=1e-6), f"block {depth}"
        state = raw_outputs["block"][depth]


def test_channel_mask_ones_changes_nothing():
    model = make_model()
    tokens = random_tokens()
    plain, _ = model(tokens)
    masked, _ = model(tokens, channel_mask=torch.ones(128))
    assert torch.equal(plain, masked)


@pytest.mark.parametrize(
    "flags, message",
    [
        (("MPF_TALE_LOSS",), "unknown model flag 'MPF_TALE_LOSS'"),
        (("MPF_SIM_QUANT_2BIT", "MPF_SIM_QUANT_4BIT"), "mutually exclusive"),
    ],
)
def test_gpt_flag_errors(flags, message):
    with pytest.raises(ConfigError, match=message):
        GPT(ModelDims.decode("e128h1d2"), VOCAB, flags)


def test_unknown_flag_lists_known():
    with pytest.raises(ConfigError) as error:
        GPT(ModelDims.decode("e128h1d2"), VOCAB, ["MPF_NOPE"])
    for name in MODEL_FLAGS:
        assert name in str(error.value)


def test_abs_positions_too_long():
    model = make_model(flags=("MPF_ABS_POSITIONS",), max_len=8)
    with pytest.raises(ConfigError, match="longer than the 8 learned positions"):
        model(random_tokens(length=9))


def test_rotary_beyond_max_len():
    model = make_model(max_len=8)
    logits, _ = model(random_tokens(length=12))
    assert logits.shape == (2, 12, VOCAB)


@pytest.mark.parametrize(
    "flags, embedding_rows",
    [((), VOCAB), (("MPF_ABS_POSITIONS",), VOCAB + 64)],
)
def test_parameter_counts(flags, embedding_rows):
    model = make_model(flags=flags, max_len=64)
    total, without_embeddings = parameter_counts(model)
    assert total == sum(p.numel() for p in model.parameters())
    assert total - without_embeddings == embedding_rows * 128


def test_block_parameters_match_dims():
    dims = ModelDims.decode("e256h2d4relu3")
    model = GPT(dims, VOCAB)
    block_matrices = sum(p.numel() for name, p in model.blocks.named_parameters() if p.ndim == 2)
    assert block_matrices == dims.block_parameters()


def test_bf16_autocast_forward():
    model = make_model()
    tokens = random_tokens()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits, loss = model(tokens, tokens)
    assert logits.dtype == torch.bfloat16
    assert math.isfinite(loss.item())


def test_bf16_autocast_backward():
    model = make_model()
    tokens = random_tokens()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, loss = model(tokens, tokens)
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_deep_model_residual_scale():
    torch.manual_seed(0)
    model = GPT(ModelDims.decode("e256h1d48w64relu1"), VOCAB)
    tokens = random_tokens(length=32)
    states = []
    hook = model.blocks[-1].register_forward_hook(lambda _m, _i, out: states.append(out))
    model(tokens)
    hook.remove()
    rms = states[0].pow(2).mean().sqrt().item()
    assert 0.5 < rms < 2.0
