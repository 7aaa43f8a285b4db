"""Frozen BatchNorm: the papers' fine-tuning trick for small batches of few classes.

A frozen batch-norm layer normalises with its (pretrained) running statistics even in training
mode, never updates them, and its affine weight and bias get no gradient. Module names and state
dict keys stay as they were, so checkpoints and pretrained weights load unchanged.
"""

from __future__ import annotations

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


def _stay_in_eval(module: nn.Module, inputs: tuple) -> None:
    """Forward pre-hook: whatever `.train()` set, a frozen layer runs in eval mode."""
    module.training = False


def freeze_batchnorm(module: nn.Module) -> int:
    """Freeze every batch-norm layer inside `module`; returns how many were frozen.

    Calling it twice is harmless (a layer is hooked once).
    """
    count = 0
    for layer in module.modules():
        if not isinstance(layer, _BatchNorm):
            continue
        for param in layer.parameters(recurse=False):
            param.requires_grad_(False)
        layer.eval()
        if not getattr(layer, "_dml_frozen", False):
            layer.register_forward_pre_hook(_stay_in_eval)
            layer._dml_frozen = True
        count += 1
    return count


def is_frozen(layer: nn.Module) -> bool:
    """True for a batch-norm layer frozen by :func:`freeze_batchnorm`."""
    return bool(getattr(layer, "_dml_frozen", False))
