"""Frozen BatchNorm: eval-mode statistics through .train(), no gradient, left out of the optimizer."""

from __future__ import annotations

import torch
from torch import nn

from dml.models import SmallCNN, freeze_batchnorm
from dml.models.freeze import is_frozen
from dml.training.run import build_model, build_module


def _batchnorms(module: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def test_frozen_layers_keep_their_statistics_in_training_mode():
    net = SmallCNN(width=4)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    assert freeze_batchnorm(net) == len(_batchnorms(net)) > 0
    assert freeze_batchnorm(net) == len(_batchnorms(net))  # twice is harmless
    net.train()  # what Lightning does at the start of every epoch
    x = torch.randn(6, 3, 16, 16) * 3 + 1
    out = net(x)
    out.sum().backward()
    after = net.state_dict()
    for key, value in before.items():
        assert torch.equal(after[key], value), key  # running stats and counters untouched
    for bn in _batchnorms(net):
        assert is_frozen(bn) and not bn.training
        assert not bn.weight.requires_grad and bn.weight.grad is None
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert all(c.weight.grad is not None for c in convs)  # the rest still trains

    # eval-mode normalisation: the same output as the unfrozen network in eval mode
    plain = SmallCNN(width=4)
    plain.load_state_dict(before)
    plain.eval()
    with torch.no_grad():
        assert torch.allclose(net(x), plain(x), atol=1e-6)


def test_config_switch_freezes_the_backbone_and_the_optimizer_skips_it(compose_cfg):
    cfg = compose_cfg("backbone=small_cnn", "++backbone.freeze_bn=true", "logger=none")
    model = build_model(cfg)
    assert all(is_frozen(bn) for bn in _batchnorms(model.backbone))
    optimizer = build_module(cfg, model=model).configure_optimizers()
    optimizer = optimizer["optimizer"] if isinstance(optimizer, dict) else optimizer
    in_optimizer = {id(p) for group in optimizer.param_groups for p in group["params"]}
    frozen = {id(p) for bn in _batchnorms(model.backbone) for p in bn.parameters()}
    assert frozen and not frozen & in_optimizer
    assert {id(p) for p in model.head.parameters()} <= in_optimizer

    unfrozen = build_model(compose_cfg("backbone=small_cnn", "logger=none"))
    assert not any(is_frozen(bn) for bn in _batchnorms(unfrozen.backbone))
