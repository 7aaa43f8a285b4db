"""torchvision ResNets without network: the error names the file to download and where it goes."""

from __future__ import annotations

import pytest
import torch
import torchvision

from dml.config import ConfigError
from dml.models import TorchvisionResNet


def test_resnet_pretrained_offline_names_url_and_cache_path(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    enum = torchvision.models.get_model_weights("resnet18").DEFAULT

    def offline(self, *args, **kwargs):
        raise OSError("<urlopen error [Errno -2] Name or service not known>")

    monkeypatch.setattr(type(enum), "get_state_dict", offline)
    with pytest.raises(ConfigError) as err:
        TorchvisionResNet("resnet18", pretrained=True)
    message = str(err.value)
    filename = enum.url.rsplit("/", 1)[-1]
    assert enum.url in message
    assert str(tmp_path / "hub" / "checkpoints" / filename) in message
    assert "backbone.net.weights" in message
