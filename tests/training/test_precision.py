"""Reduced precision and speed switches: sampler and loss stay exact under bf16 autocast (CPU),
channels_last and compile are wired from the config."""

from __future__ import annotations

import functools

import hydra
import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch import nn

from dml.config import config_dir
from dml.losses.build import build_loss
from dml.losses.memory import CrossBatchMemory
from dml.training.module import DMLModule
from dml.training.objective import TrainingObjective
from dml.training.run import build_module

SAMPLERS = sorted(p.stem for p in (config_dir() / "sampler").glob("*.yaml"))


class Head(nn.Module):
    """A linear embedding whose output stays in the autocast dtype (no float() before normalising)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(32, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.fc(x), dim=1)


def _module(sampler: str, loss: str, memory_size: int = 0) -> DMLModule:
    torch.manual_seed(0)
    s = OmegaConf.load(config_dir() / "sampler" / f"{sampler}.yaml")
    s.seed = 0
    loss_node = OmegaConf.load(config_dir() / "loss" / f"{loss}.yaml")
    memory = CrossBatchMemory(memory_size) if memory_size else None
    objective = TrainingObjective(build_loss(loss_node), hydra.utils.instantiate(s), memory)
    return DMLModule(Head(), objective, optimizer=functools.partial(torch.optim.SGD, lr=0.1))


@pytest.mark.parametrize(("loss", "memory_size"), [("margin", 0), ("multi_similarity", 48)])
@pytest.mark.parametrize("sampler", SAMPLERS)
def test_bf16_autocast_loss_equals_float32_on_the_same_embeddings(sampler, loss, memory_size):
    x = torch.randn(32, 32, generator=torch.Generator().manual_seed(1))
    labels = torch.arange(32) % 4
    module = _module(sampler, loss, memory_size)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        emb = module.model(x)
        assert emb.dtype == torch.bfloat16
        for _ in range(2):  # the second call also uses the memory
            value = module.objective(emb, labels)
    value.backward()
    grad = module.model.fc.weight.grad
    assert torch.isfinite(value) and torch.isfinite(grad).all() and grad.abs().sum() > 0

    # the same bf16 embeddings, upcast, outside autocast: the same tuples and the same loss
    reference = _module(sampler, loss, memory_size)
    for _ in range(2):
        expected = reference.objective(emb.detach().float(), labels)
    torch.testing.assert_close(value.detach(), expected, atol=1e-6, rtol=1e-6)


def _compose(compose_cfg, *overrides: str):
    return compose_cfg("backbone=small_cnn", "logger=none", *overrides)


def test_channels_last_converts_model_and_inputs(compose_cfg):
    module = build_module(_compose(compose_cfg, "channels_last=true"))
    conv = next(m for m in module.model.modules() if isinstance(m, nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    seen = []
    conv.register_forward_pre_hook(
        lambda m, args: seen.append(args[0].is_contiguous(memory_format=torch.channels_last))
    )
    x = torch.randn(4, 3, 16, 16)
    out = module.model(x)
    assert seen == [True]
    plain = build_module(_compose(compose_cfg))
    plain.model.load_state_dict(module.model.state_dict())
    torch.testing.assert_close(out, plain.model(x), atol=1e-5, rtol=1e-5)


def test_compile_keeps_parameter_names(compose_cfg):
    plain = build_module(_compose(compose_cfg))
    compiled = build_module(_compose(compose_cfg, "compile=true"))
    assert (
        compiled.model._compiled_call_impl is not None and plain.model._compiled_call_impl is None
    )
    assert list(compiled.state_dict()) == list(plain.state_dict())


def test_memory_options_are_taken_out_of_the_loss_node(compose_cfg):
    cfg = _compose(compose_cfg, "loss=margin", "xbm.memory_size=64", "xbm.memory_start=3")
    assert "memory_size" not in cfg.loss
    module = build_module(cfg)
    assert (
        module.memory.size == 64
        and module.memory.start == 3
        and type(module.loss).__name__ == "MarginLoss"
    )


@pytest.mark.slow
def test_compiled_bf16_step_runs(compose_cfg):
    """torch.compile (inductor, C++ on CPU) of small_cnn, one bf16 training step: slow to compile."""
    module = build_module(_compose(compose_cfg, "compile=true", "channels_last=true"))
    x, y = torch.randn(20, 3, 16, 16), torch.arange(20) % 5
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = module.objective(module.model(x), y)
    loss.backward()
    assert torch.isfinite(loss)
