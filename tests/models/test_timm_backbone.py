"""backbone=timm: any timm model by name, pooled features, local weights, offline errors."""

from __future__ import annotations

import pytest
import torch

timm = pytest.importorskip("timm")

from dml.config import ConfigError  # noqa: E402
from dml.models import TimmBackbone  # noqa: E402
from dml.models import timm_backbone as tb  # noqa: E402

NAME = "resnet10t"  # a small timm-only architecture (5M parameters)


@pytest.fixture(scope="module")
def backbone() -> TimmBackbone:
    return TimmBackbone(NAME).eval()


def test_pooled_features_of_the_named_model(backbone):
    reference = timm.create_model(NAME, num_classes=0)
    assert backbone.out_features == reference.num_features == 512
    with torch.no_grad():
        out = backbone(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 512)


def test_unknown_name_lists_similar_ones():
    with pytest.raises(ValueError, match="backbone.net.name='resnet10x'.*resnet"):
        TimmBackbone("resnet10x")


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_local_weights_load_strictly_without_classifier(tmp_path, suffix):
    source = timm.create_model(
        NAME, num_classes=1000
    )  # a checkpoint as published: with its classifier
    state = {k: v.clone() for k, v in source.state_dict().items()}
    assert "fc.weight" in state
    path = tmp_path / f"weights{suffix}"
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path))
    else:
        torch.save({"state_dict": state}, path)
    net = TimmBackbone(NAME, weights=str(path))
    assert torch.equal(net.net.state_dict()["conv1.0.weight"], state["conv1.0.weight"])

    del state["layer1.0.conv1.weight"]
    torch.save(state, tmp_path / "broken.pth")
    with pytest.raises(ValueError, match="layer1.0.conv1.weight"):
        TimmBackbone(NAME, weights=str(tmp_path / "broken.pth"))


def test_pretrained_offline_says_what_file_to_put_where(monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(tb, "cached_weights", lambda cfg: None)
    with pytest.raises(ConfigError) as err:
        TimmBackbone(NAME, pretrained=True)
    hub_id = timm.create_model(NAME).pretrained_cfg["hf_hub_id"]
    message = str(err.value)
    assert f"https://huggingface.co/{hub_id}/resolve/main/model.safetensors" in message
    assert "backbone.net.weights=" in message and constants.HF_HUB_CACHE in message


def test_pretrained_loads_from_the_cache(monkeypatch, tmp_path):
    source = timm.create_model(NAME, num_classes=1000)
    torch.save(source.state_dict(), tmp_path / "cached.pth")
    monkeypatch.setattr(tb, "cached_weights", lambda cfg: tmp_path / "cached.pth")
    net = TimmBackbone(NAME, pretrained=True)
    assert torch.equal(
        net.net.state_dict()["conv1.0.weight"], source.state_dict()["conv1.0.weight"]
    )


def test_weights_location_for_url_hosted_weights(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    text = tb.weights_location({"url": "https://example.org/w/net-1234.pth"})
    assert (
        str(tmp_path / "checkpoints" / "net-1234.pth") in text
        and "https://example.org/w/net-1234.pth" in text
    )
