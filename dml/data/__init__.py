"""Datasets, batch samplers, transforms and the datamodule."""

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
