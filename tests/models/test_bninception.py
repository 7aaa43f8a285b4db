"""BN-Inception: layer names and shapes of the converted ImageNet weights, strict loading, output."""

from __future__ import annotations

import pytest
import torch

from dml.config import ConfigError
from dml.models import BNInception
from dml.models import bninception as bn_module

# Every conv of the Caffe-converted BN-Inception (Cadene's pretrainedmodels `bninception`), written
# out from that model's definition: name, in channels, out channels, kernel side. Each conv has a bias
# and a batch norm `<name>_bn`; the ImageNet classifier is `last_linear` (1024 -> 1000).
CONVERTED = """
conv1_7x7_s2 3 64 7
conv2_3x3_reduce 64 64 1
conv2_3x3 64 192 3
inception_3a_1x1 192 64 1
inception_3a_3x3_reduce 192 64 1
inception_3a_3x3 64 64 3
inception_3a_double_3x3_reduce 192 64 1
inception_3a_double_3x3_1 64 96 3
inception_3a_double_3x3_2 96 96 3
inception_3a_pool_proj 192 32 1
inception_3b_1x1 256 64 1
inception_3b_3x3_reduce 256 64 1
inception_3b_3x3 64 96 3
inception_3b_double_3x3_reduce 256 64 1
inception_3b_double_3x3_1 64 96 3
inception_3b_double_3x3_2 96 96 3
inception_3b_pool_proj 256 64 1
inception_3c_3x3_reduce 320 128 1
inception_3c_3x3 128 160 3
inception_3c_double_3x3_reduce 320 64 1
inception_3c_double_3x3_1 64 96 3
inception_3c_double_3x3_2 96 96 3
inception_4a_1x1 576 224 1
inception_4a_3x3_reduce 576 64 1
inception_4a_3x3 64 96 3
inception_4a_double_3x3_reduce 576 96 1
inception_4a_double_3x3_1 96 128 3
inception_4a_double_3x3_2 128 128 3
inception_4a_pool_proj 576 128 1
inception_4b_1x1 576 192 1
inception_4b_3x3_reduce 576 96 1
inception_4b_3x3 96 128 3
inception_4b_double_3x3_reduce 576 96 1
inception_4b_double_3x3_1 96 128 3
inception_4b_double_3x3_2 128 128 3
inception_4b_pool_proj 576 128 1
inception_4c_1x1 576 160 1
inception_4c_3x3_reduce 576 128 1
inception_4c_3x3 128 160 3
inception_4c_double_3x3_reduce 576 128 1
inception_4c_double_3x3_1 128 160 3
inception_4c_double_3x3_2 160 160 3
inception_4c_pool_proj 576 128 1
inception_4d_1x1 608 96 1
inception_4d_3x3_reduce 608 128 1
inception_4d_3x3 128 192 3
inception_4d_double_3x3_reduce 608 160 1
inception_4d_double_3x3_1 160 192 3
inception_4d_double_3x3_2 192 192 3
inception_4d_pool_proj 608 128 1
inception_4e_3x3_reduce 608 128 1
inception_4e_3x3 128 192 3
inception_4e_double_3x3_reduce 608 192 1
inception_4e_double_3x3_1 192 256 3
inception_4e_double_3x3_2 256 256 3
inception_5a_1x1 1056 352 1
inception_5a_3x3_reduce 1056 192 1
inception_5a_3x3 192 320 3
inception_5a_double_3x3_reduce 1056 160 1
inception_5a_double_3x3_1 160 224 3
inception_5a_double_3x3_2 224 224 3
inception_5a_pool_proj 1056 128 1
inception_5b_1x1 1024 352 1
inception_5b_3x3_reduce 1024 192 1
inception_5b_3x3 192 320 3
inception_5b_double_3x3_reduce 1024 192 1
inception_5b_double_3x3_1 192 224 3
inception_5b_double_3x3_2 224 224 3
inception_5b_pool_proj 1024 128 1
"""


def converted_state_dict(
    bn_shape_1c: bool = False, with_counter: bool = False
) -> dict[str, torch.Tensor]:
    """A state dict with the converted file's names and shapes (random values), classifier included."""
    g = torch.Generator().manual_seed(0)
    state: dict[str, torch.Tensor] = {}
    for line in CONVERTED.strip().splitlines():
        name, cin, cout, k = line.split()
        cin, cout, k = int(cin), int(cout), int(k)
        state[f"{name}.weight"] = torch.randn(cout, cin, k, k, generator=g) * 0.01
        state[f"{name}.bias"] = torch.randn(cout, generator=g) * 0.01
        shape = (1, cout) if bn_shape_1c else (cout,)
        state[f"{name}_bn.weight"] = torch.rand(shape, generator=g) + 0.5
        state[f"{name}_bn.bias"] = torch.randn(shape, generator=g) * 0.1
        state[f"{name}_bn.running_mean"] = torch.randn(shape, generator=g) * 0.1
        state[f"{name}_bn.running_var"] = torch.rand(shape, generator=g) + 0.5
        if with_counter:
            state[f"{name}_bn.num_batches_tracked"] = torch.tensor(7)
    state["last_linear.weight"] = torch.randn(1000, 1024, generator=g) * 0.01
    state["last_linear.bias"] = torch.zeros(1000)
    return state


@pytest.fixture(scope="module")
def model() -> BNInception:
    return BNInception().eval()


@pytest.fixture(scope="module")
def converted_file(tmp_path_factory) -> tuple:
    """The converted state dict and a file holding it where a torch hub cache would (written once: 40 MB)."""
    state = converted_state_dict(with_counter=True)
    path = tmp_path_factory.mktemp("hub") / "checkpoints" / "bn_inception-52deb4733.pth"
    path.parent.mkdir()
    torch.save(state, path)
    return state, path


def test_key_names_and_shapes_are_those_of_the_converted_weights(model):
    expected = {
        k: v.shape for k, v in converted_state_dict().items() if not k.startswith("last_linear.")
    }
    own = {
        k: v.shape for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")
    }
    assert own == expected
    assert sum(v.numel() for v in model.parameters()) == sum(
        v.numel() for k, v in expected.items() if not k.endswith(("running_mean", "running_var"))
    )


def test_loads_the_converted_file_strictly(converted_file):
    state, path = converted_file
    net = BNInception(weights=str(path))
    loaded = net.state_dict()
    for key in (
        "conv1_7x7_s2.weight",
        "inception_3a_1x1_bn.running_mean",
        "inception_5b_pool_proj_bn.weight",
    ):
        assert torch.equal(loaded[key], state[key].reshape(loaded[key].shape))
    assert not any(k.startswith("last_linear") for k in loaded)


def test_oldest_conversion_with_1xC_batchnorm_vectors_loads(tmp_path):
    state = converted_state_dict(bn_shape_1c=True)
    assert state["conv1_7x7_s2_bn.running_var"].shape == (1, 64)
    torch.save(state, tmp_path / "old.pth")
    net = BNInception(weights=str(tmp_path / "old.pth"))
    assert torch.equal(
        net.conv1_7x7_s2_bn.running_var, state["conv1_7x7_s2_bn.running_var"].reshape(64)
    )


def test_missing_or_misnamed_layers_are_errors(tmp_path):
    state = converted_state_dict()
    state["inception_3a_1x1_batchnorm.weight"] = state.pop("inception_3a_1x1_bn.weight")
    path = tmp_path / "renamed.pth"
    torch.save(state, path)
    with pytest.raises(ValueError, match="inception_3a_1x1_bn.weight"):
        BNInception(weights=str(path))
    with pytest.raises(FileNotFoundError, match="backbone.net.weights"):
        BNInception(weights=str(tmp_path / "absent.pth"))


def test_output_is_1024_pooled_features(model):
    with torch.no_grad():
        out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, BNInception.out_features) == (2, 1024)
    assert torch.isfinite(out).all() and (out >= 0).all()  # ReLU features, average pooled


def test_bad_input_side_names_the_fix(model):
    with torch.no_grad(), pytest.raises(ValueError, match="multiples of 32"):
        model(torch.randn(1, 3, 40, 40))


def test_pretrained_without_network_says_what_to_put_where(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def offline(url, dst, **kwargs):
        raise OSError("Name or service not known")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(ConfigError) as err:
        BNInception(pretrained=True)
    message = str(err.value)
    assert bn_module.WEIGHT_URL in message
    assert str(tmp_path / "hub" / "checkpoints" / "bn_inception-52deb4733.pth") in message
    assert "backbone.net.weights" in message


def test_pretrained_uses_the_cached_file(converted_file, monkeypatch):
    state, path = converted_file
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(path.parent.parent))
    net = BNInception(pretrained=True)
    assert torch.equal(net.state_dict()["conv2_3x3.weight"], state["conv2_3x3.weight"])
