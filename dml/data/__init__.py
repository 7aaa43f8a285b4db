"""Datasets, batch samplers, transforms and the datamodule.

The names below are imported on first access (PEP 562), so that importing a torch-free part of
dml.data (the registry of `dml-data`, the download code) does not import torch: `dml-data --help`
answers at once. `from dml.data import CUB200` and `_target_: dml.data.Digits` work as before.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# public name -> the module that defines it
_EXPORTS = {
    "CUB200": "dml.data.cub",
    "LFW": "dml.data.lfw",
    "Cars196": "dml.data.cars",
    "ClassBalancedBatchSampler": "dml.data.batch_sampler",
    "CsvDataset": "dml.data.csvfile",
    "Digits": "dml.data.embedded",
    "Emoji": "dml.data.emoji",
    "FolderDataset": "dml.data.folder",
    "Fonts": "dml.data.fonts",
    "ImageListDataset": "dml.data.image_list",
    "InShop": "dml.data.inshop",
    "StanfordOnlineProducts": "dml.data.sop",
    "Synthetic": "dml.data.embedded",
    "build_transform": "dml.data.transforms",
}

__all__ = [
    "CUB200",
    "LFW",
    "Cars196",
    "ClassBalancedBatchSampler",
    "CsvDataset",
    "Digits",
    "Emoji",
    "FolderDataset",
    "Fonts",
    "ImageListDataset",
    "InShop",
    "StanfordOnlineProducts",
    "Synthetic",
    "build_transform",
]

if TYPE_CHECKING:
    from dml.data.batch_sampler import ClassBalancedBatchSampler
    from dml.data.cars import Cars196
    from dml.data.csvfile import CsvDataset
    from dml.data.cub import CUB200
    from dml.data.embedded import Digits, Synthetic
    from dml.data.emoji import Emoji
    from dml.data.folder import FolderDataset
    from dml.data.fonts import Fonts
    from dml.data.image_list import ImageListDataset
    from dml.data.inshop import InShop
    from dml.data.lfw import LFW
    from dml.data.sop import StanfordOnlineProducts
    from dml.data.transforms import build_transform


def __getattr__(name: str) -> Any:
    """Import a public name's module on first access and keep the name here."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'dml.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
