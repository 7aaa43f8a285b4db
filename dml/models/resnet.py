"""torchvision ResNets as feature extractors (classifier removed), optionally with ImageNet weights."""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torchvision
from torch import nn

from dml.config import ConfigError

_NAMES = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")


class TorchvisionResNet(nn.Module):
    """A torchvision ResNet whose `fc` is replaced by identity; `out_features` is its pooled width.

    pretrained=True loads torchvision's ImageNet weights from the torch hub cache (or downloads them
    where a network is available); `weights=PATH` loads a local state dict instead.
    """

    def __init__(
        self, name: str = "resnet50", pretrained: bool = False, weights: str | None = None
    ) -> None:
        super().__init__()
        if name not in _NAMES:
            raise ValueError(f"backbone.net.name={name!r} is not one of {_NAMES}")
        self.net = getattr(torchvision.models, name)(weights=None)
        self.out_features = self.net.fc.in_features
        self.net.fc = nn.Identity()
        if weights is not None:
            self._load_file(Path(weights))
        elif pretrained:
            self._load_pretrained(name)

    def _load_file(self, path: Path) -> None:
        if not path.is_file():
            raise FileNotFoundError(
                f"backbone.net.weights={str(path)!r} does not exist; point it at a state dict file"
            )
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        self.net.load_state_dict(state, strict=True)

    def _load_pretrained(self, name: str) -> None:
        enum = torchvision.models.get_model_weights(name).DEFAULT
        hub_dir = Path(torch.hub.get_dir()) / "checkpoints"
        filename = os.path.basename(enum.url)
        try:
            state = enum.get_state_dict(progress=False, check_hash=False)
        except Exception as err:  # no network and no cached file
            raise ConfigError(
                f"could not load ImageNet weights for {name}: {err}. With no network, download {enum.url} "
                f"elsewhere and put it at {hub_dir / filename}, or set backbone.net.weights=/path/to/{filename}"
            ) from err
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        self.net.load_state_dict(state, strict=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
