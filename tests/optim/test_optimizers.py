"""build_optimizer: every optimizer trains, decays weights and saves plain state."""

from __future__ import annotations

import json

import pytest
import torch

from gptpipe.config.dims import ModelDims
from gptpipe.errors import ConfigError
from gptpipe.model import GPT
from gptpipe.optim import DEFAULT_OPTIMIZER, OPTIMIZERS, build_optimizer, parameter_roles
from gptpipe.optim.muon import BatchedMuon

VOCAB = 16


def tiny_model() -> GPT:
    torch.manual_seed(0)
    return GPT(ModelDims.decode("e128h1d2w16relu1"), VOCAB, max_len=16)


def fixed_batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, VOCAB, (4, 17), generator=generator)
    return tokens[:, :-1], tokens[:, 1:]


def train_steps(model: GPT, optimizer: torch.optim.Optimizer, steps: int) -> list[float]:
    inputs, targets = fixed_batch()
    losses = []
    for _ in range(steps):
        _, loss = model(inputs, targets)
        losses.append(loss.item())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return losses


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_optimizer_reduces_loss(name):
    model = tiny_model()
    losses = train_steps(model, build_optimizer(model, name, lr=0.01, weight_decay=0.0), 25)
    assert losses[-1] < 0.7 * losses[0]


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_weight_decay_shrinks_matrices(name):
    model = tiny_model()
    optimizer = build_optimizer(model, name, lr=0.1, weight_decay=0.5)
    for param in model.parameters():
        param.grad = torch.zeros_like(param)
    matrix = model.blocks[0].ffn.up.weight
    before = matrix.detach().clone()
    optimizer.step()
    assert torch.allclose(matrix, before * (1 - 0.1 * 0.5))


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_weight_decay_spares_embeddings(name):
    model = tiny_model()
    optimizer = build_optimizer(model, name, lr=0.1, weight_decay=0.5)
    for param in model.parameters():
        param.grad = torch.zeros_like(param)
    before = model.token_embedding.weight.detach().clone()
    optimizer.step()
    assert torch.equal(model.token_embedding.weight, before)


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_state_dict_plain_values(name):
    model = tiny_model()
    optimizer = build_optimizer(model, name, lr=0.01, weight_decay=0.1)
    train_steps(model, optimizer, 2)
    state_dict = optimizer.state_dict()
    for index, values in state_dict["state"].items():
        for key, value in values.items():
            assert isinstance(value, (torch.Tensor, int, float)), f"state {index} {key}"
    groups = [{k: v for k, v in group.items()} for group in state_dict["param_groups"]]
    assert json.loads(json.dumps(groups)) is not None


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_state_dict_resume_identical(name):
    model = tiny_model()
    optimizer = build_optimizer(model, name, lr=0.01, weight_decay=0.1)
    train_steps(model, optimizer, 3)
    saved_model = {k: v.clone() for k, v in model.state_dict().items()}
    saved_optimizer = optimizer.state_dict()
    saved_optimizer = {
        "state": {i: {k: v.clone() for k, v in s.items()} for i, s in saved_optimizer["state"].items()},
        "param_groups": json.loads(json.dumps(saved_optimizer["param_groups"])),
    }
    train_steps(model, optimizer, 2)

    resumed = tiny_model()
    resumed.load_state_dict(saved_model)
    resumed_optimizer = build_optimizer(resumed, name, lr=0.01, weight_decay=0.1)
    resumed_optimizer.load_state_dict(saved_optimizer)
    train_steps(resumed, resumed_optimizer, 2)
    for (key, original), continued in zip(model.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(original, continued), key


def test_unknown_optimizer_lists_names():
    model = tiny_model()
    with pytest.raises(ConfigError) as error:
        build_optimizer(model, "sgd", lr=0.01, weight_decay=0.0)
    for name in OPTIMIZERS:
        assert name in str(error.value)


@pytest.mark.parametrize(
    "lr, weight_decay, message",
    [(0.0, 0.0, "learning rate must be > 0"), (0.01, -1.0, "weight decay must be >= 0")],
)
def test_optimizer_value_errors(lr, weight_decay, message):
    with pytest.raises(ConfigError, match=message):
        build_optimizer(tiny_model(), "adamw", lr=lr, weight_decay=weight_decay)


def test_default_optimizer_known():
    assert DEFAULT_OPTIMIZER in OPTIMIZERS


def test_parameter_roles_cover_model():
    model = tiny_model()
    roles = parameter_roles(model)
    counted = sum(p.numel() for params in roles.values() for p in params)
    assert counted == sum(p.numel() for p in model.parameters())


def test_parameter_roles_output_and_embedding():
    model = tiny_model()
    roles = parameter_roles(model)
    assert [p is model.output.weight for p in roles["output"]] == [True]
    assert [p is model.token_embedding.weight for p in roles["embedding"]] == [True]


@pytest.mark.parametrize("adjust_lr_fn", [None, "match_rms_adamw"])
@pytest.mark.parametrize("nesterov", [True, False])
def test_batched_muon_matches_torch_muon(adjust_lr_fn, nesterov):
    torch.manual_seed(0)
    shapes = [(48, 16), (16, 16), (16, 48), (48, 16), (16, 16), (8, 24)]
    reference = [torch.nn.Parameter(torch.randn(shape)) for shape in shapes]
    batched = [torch.nn.Parameter(p.detach().clone()) for p in reference]
    options = dict(lr=0.02, weight_decay=0.1, nesterov=nesterov, adjust_lr_fn=adjust_lr_fn)
    reference_optimizer = torch.optim.Muon(reference, **options)
    batched_optimizer = BatchedMuon(batched, ns_dtype=torch.bfloat16, **options)
    for step in range(4):
        for index, (p, q) in enumerate(zip(reference, batched)):
            # The last matrix gets no gradient on odd steps: both optimizers must skip it.
            grad = None if index == len(shapes) - 1 and step % 2 else torch.randn(p.shape)
            p.grad = None if grad is None else grad.clone()
            q.grad = None if grad is None else grad.clone()
        reference_optimizer.step()
        batched_optimizer.step()
    for p, q in zip(reference, batched):
        # Batched and one-at-a-time bf16 products may round differently: up to about 4e-5 after 4 steps.
        assert torch.allclose(p, q, rtol=0, atol=2e-4)
        reference_buffer = reference_optimizer.state[p]["momentum_buffer"]
        assert torch.equal(reference_buffer, batched_optimizer.state[q]["momentum_buffer"])


def _muon_steps(dtype: torch.dtype | None, steps: int = 3) -> list[torch.Tensor]:
    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(shape, dtype=torch.float64)) for shape in [(48, 16), (16, 48), (16, 16)]]
    optimizer = BatchedMuon(params, lr=0.02, ns_dtype=dtype)
    for _ in range(steps):
        for p in params:
            p.grad = torch.randn(p.shape, dtype=torch.float64)
        optimizer.step()
    return [p.detach().clone() for p in params]


def test_batched_muon_float32_iteration_tracks_float64():
    exact = _muon_steps(torch.float64)
    single = _muon_steps(torch.float32)
    half = _muon_steps(torch.bfloat16)
    for p, q, r in zip(exact, single, half):
        assert torch.allclose(p, q, rtol=0, atol=1e-6)
        # bf16 products round visibly; float32 must be far closer to the float64 result.
        assert (p - r).abs().max() > 100 * (p - q).abs().max()


@pytest.mark.parametrize("native_bf16, expected", [(True, torch.bfloat16), (False, torch.float32)])
def test_batched_muon_picks_iteration_dtype_from_cpu(monkeypatch, native_bf16, expected):
    import gptpipe.hardware

    monkeypatch.setattr(gptpipe.hardware, "cpu_supports_bf16", lambda: native_bf16)
    optimizer = BatchedMuon([torch.nn.Parameter(torch.randn(4, 8))], lr=0.02)
    assert optimizer._newton_schulz_dtype(torch.device("cpu")) == expected
    assert optimizer._newton_schulz_dtype(torch.device("cuda")) == torch.bfloat16
    assert BatchedMuon([torch.nn.Parameter(torch.randn(4, 8))], lr=0.02,
                       ns_dtype=torch.float64)._newton_schulz_dtype(torch.device("cpu")) == torch.float64
