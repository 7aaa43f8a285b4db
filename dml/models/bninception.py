"""BN-Inception (Ioffe & Szegedy 2015), the backbone of most metric-learning papers since 2017.

Layer names follow the widely used Caffe-to-PyTorch conversion (Cadene's `pretrainedmodels`
`bninception`), so its ImageNet state dict loads strictly: `conv1_7x7_s2.weight`,
`conv1_7x7_s2_bn.running_mean`, `inception_3a_1x1...`, `last_linear.weight` (the ImageNet
classifier, dropped here). The network expects BGR images in [0, 255] minus the mean
(104, 117, 128), which the data pipeline produces with the backbone config's `normalize: bgr255`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from dml.config import ConfigError

# the converted ImageNet weights; the metric-learning code bases (e.g. the MS-loss reference code)
# load the first one, an older release of the same conversion has the second name
WEIGHT_FILES = ("bn_inception-52deb4733.pth", "bn_inception-239d2248.pth")
WEIGHT_URL = "http://data.lip6.fr/cadene/pretrainedmodels/" + WEIGHT_FILES[0]
_CLASSIFIER = "last_linear."


class _Block(NamedTuple):
    """One inception module: output widths of its branches (None: branch absent)."""

    name: str
    in_ch: int
    b1x1: int | None  # plain 1x1 branch
    b3x3: tuple[int, int]  # (1x1 reduce, 3x3)
    bdouble: tuple[int, int]  # (1x1 reduce, two stacked 3x3)
    pool: str  # "avg" (3x3, stride 1), "max" (3x3, stride 1) or "max_s2" (3x3, stride 2)
    pool_proj: int | None  # 1x1 after the pool; None: the pooled input is concatenated as is
    stride: int  # stride of the last 3x3 of the 3x3 and double branches


_BLOCKS = (
    _Block("3a", 192, 64, (64, 64), (64, 96), "avg", 32, 1),
    _Block("3b", 256, 64, (64, 96), (64, 96), "avg", 64, 1),
    _Block("3c", 320, None, (128, 160), (64, 96), "max_s2", None, 2),
    _Block("4a", 576, 224, (64, 96), (96, 128), "avg", 128, 1),
    _Block("4b", 576, 192, (96, 128), (96, 128), "avg", 128, 1),
    _Block("4c", 576, 160, (128, 160), (128, 160), "avg", 128, 1),
    _Block("4d", 608, 96, (128, 192), (160, 192), "avg", 128, 1),
    _Block("4e", 608, None, (128, 192), (192, 256), "max_s2", None, 2),
    _Block("5a", 1056, 352, (192, 320), (160, 224), "avg", 128, 1),
    _Block("5b", 1024, 352, (192, 320), (192, 224), "max", 128, 1),
)


def _out_channels(block: _Block) -> int:
    return (
        (block.b1x1 or 0)
        + block.b3x3[1]
        + block.bdouble[1]
        + (block.pool_proj if block.pool_proj is not None else block.in_ch)
    )


class BNInception(nn.Module):
    """BN-Inception trunk with global average pooling: images [B, 3, H, W] -> features [B, 1024].

    `weights=PATH` loads a converted state dict from a local file, strictly (every layer must be
    present with its shape; the ImageNet classifier `last_linear.*` is ignored). `pretrained=True`
    loads the same file from the torch hub cache, downloading it where a network is available.
    Input sides that are multiples of 32 (224, 256) or the papers' 227 give matching branch sizes.
    """

    out_features = 1024

    def __init__(self, pretrained: bool = False, weights: str | os.PathLike | None = None) -> None:
        super().__init__()
        self._convs: list[str] = []
        self._conv("conv1_7x7_s2", 3, 64, 7, stride=2, padding=3)
        self._conv("conv2_3x3_reduce", 64, 64, 1)
        self._conv("conv2_3x3", 64, 192, 3, padding=1)
        in_ch = 192
        for block in _BLOCKS:
            if block.in_ch != in_ch:  # the table is wrong, not the input
                raise AssertionError(
                    f"inception_{block.name} expects {block.in_ch} channels, gets {in_ch}"
                )
            self._inception(block)
            in_ch = _out_channels(block)
        if in_ch != self.out_features:
            raise AssertionError(
                f"BN-Inception ends with {in_ch} channels, not {self.out_features}"
            )
        if weights is not None:
            self.load_weights(weights)
        elif pretrained:
            self.load_weights(_cached_or_downloaded())

    # ---- construction ----------------------------------------------------------------------
    def _conv(
        self, name: str, cin: int, cout: int, kernel: int, stride: int = 1, padding: int = 0
    ) -> None:
        """Register `name` (a biased conv, as in the Caffe model) and `name_bn`."""
        self.add_module(name, nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding))
        self.add_module(f"{name}_bn", nn.BatchNorm2d(cout))
        self._convs.append(name)

    def _inception(self, b: _Block) -> None:
        p = f"inception_{b.name}_"
        if b.b1x1 is not None:
            self._conv(p + "1x1", b.in_ch, b.b1x1, 1)
        self._conv(p + "3x3_reduce", b.in_ch, b.b3x3[0], 1)
        self._conv(p + "3x3", b.b3x3[0], b.b3x3[1], 3, stride=b.stride, padding=1)
        self._conv(p + "double_3x3_reduce", b.in_ch, b.bdouble[0], 1)
        self._conv(p + "double_3x3_1", b.bdouble[0], b.bdouble[1], 3, padding=1)
        self._conv(p + "double_3x3_2", b.bdouble[1], b.bdouble[1], 3, stride=b.stride, padding=1)
        if b.pool_proj is not None:
            self._conv(p + "pool_proj", b.in_ch, b.pool_proj, 1)

    # ---- forward ---------------------------------------------------------------------------
    def _cbr(self, name: str, x: torch.Tensor) -> torch.Tensor:
        """conv -> batch norm -> ReLU, the unit every layer of the network is made of."""
        return F.relu(getattr(self, f"{name}_bn")(getattr(self, name)(x)), inplace=True)

    def _block(self, b: _Block, x: torch.Tensor) -> torch.Tensor:
        p = f"inception_{b.name}_"
        branches = []
        if b.b1x1 is not None:
            branches.append(self._cbr(p + "1x1", x))
        branches.append(self._cbr(p + "3x3", self._cbr(p + "3x3_reduce", x)))
        double = self._cbr(p + "double_3x3_1", self._cbr(p + "double_3x3_reduce", x))
        branches.append(self._cbr(p + "double_3x3_2", double))
        if b.pool == "avg":
            pooled = F.avg_pool2d(x, 3, stride=1, padding=1, ceil_mode=True, count_include_pad=True)
        elif b.pool == "max":
            pooled = F.max_pool2d(x, 3, stride=1, padding=1, ceil_mode=True)
        else:
            pooled = F.max_pool2d(x, 3, stride=2, ceil_mode=True)
        branches.append(self._cbr(p + "pool_proj", pooled) if b.pool_proj is not None else pooled)
        sizes = {tuple(t.shape[2:]) for t in branches}
        if len(sizes) != 1:
            raise ValueError(
                f"BNInception: the branches of inception_{b.name} disagree in size {sorted(sizes)} for this "
                "input; use image sides that are multiples of 32 (e.g. transform crop 224) or 227"
            )
        return torch.cat(branches, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._cbr("conv1_7x7_s2", x)
        x = F.max_pool2d(x, 3, stride=2, ceil_mode=True)
        x = self._cbr("conv2_3x3", self._cbr("conv2_3x3_reduce", x))
        x = F.max_pool2d(x, 3, stride=2, ceil_mode=True)
        for block in _BLOCKS:
            x = self._block(block, x)
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)

    # ---- weights ---------------------------------------------------------------------------
    def load_weights(self, path: str | os.PathLike) -> None:
        """Load a converted BN-Inception state dict from `path` strictly (classifier ignored)."""
        path = Path(path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(
                f"backbone.net.weights={str(path)!r} does not exist; point it at the converted BN-Inception "
                f"state dict ({WEIGHT_FILES[0]}, from {WEIGHT_URL})"
            )
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
            state = state["state_dict"]
        if not isinstance(state, dict):
            raise ValueError(f"{path} does not hold a state dict (got {type(state).__name__})")
        state = {
            k.removeprefix("module."): v for k, v in state.items() if not k.startswith(_CLASSIFIER)
        }
        own = self.state_dict()
        for key, value in list(state.items()):
            # the oldest conversion stores batch-norm vectors as [1, C]
            if key in own and value.dim() == 2 and value.shape[0] == 1 and own[key].dim() == 1:
                state[key] = value.reshape(-1)
        try:
            self.load_state_dict(state, strict=True)
        except RuntimeError as err:
            raise ValueError(
                f"{path} is not a BN-Inception state dict with the converted layer names "
                f"(conv1_7x7_s2.weight, inception_3a_1x1_bn.running_mean, ...): {err}"
            ) from err


def _cached_or_downloaded() -> Path:
    """The converted ImageNet weights from the torch hub cache, downloaded there if possible."""
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    for name in WEIGHT_FILES:
        if (folder / name).is_file():
            return folder / name
    target = folder / WEIGHT_FILES[0]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(WEIGHT_URL, str(target), progress=False)
    except Exception as err:  # no network, or the host is gone
        target.unlink(missing_ok=True)
        raise ConfigError(
            f"backbone.net.pretrained=true: the BN-Inception ImageNet weights are not cached and could not be "
            f"downloaded ({err}). Download {WEIGHT_URL} on a machine with network and put it at {target} "
            f"(the torch hub cache; TORCH_HOME moves it), or set backbone.net.weights=/path/to/{WEIGHT_FILES[0]}"
        ) from err
    return target
