"""The file-backed datasets by config name: class, splits, public archives or hand-download note."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from dml.data.cars import HAND_DOWNLOAD as CARS_HAND_DOWNLOAD
from dml.data.cars import Cars196
from dml.data.csvfile import CsvDataset
from dml.data.cub import CUB200
from dml.data.download import Archive
from dml.data.folder import FolderDataset
from dml.data.image_list import ImageListDataset
from dml.data.inshop import HAND_DOWNLOAD as INSHOP_HAND_DOWNLOAD
from dml.data.inshop import InShop
from dml.data.lfw import LFW
from dml.data.sop import StanfordOnlineProducts

OWN_DATA = (
    "this is your own data, nothing to download: put it under ROOT (see the README's "
    "'Own data'), then check it with `dml-data check <folder|csv> --root ROOT --verify-images`"
)


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    cls: type[ImageListDataset]
    splits: tuple[str, ...]
    archives: tuple[Archive, ...] = field(default_factory=tuple)
    hand_download: str | None = None


DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo(
            "cub200",
            CUB200,
            ("train", "test"),
            (
                Archive(
                    "https://data.caltech.edu/records/65de6-vp158/files/CUB_200_2011.tgz",
                    "97eceeb196236b17998738112f37df78",
                ),
            ),
        ),
        DatasetInfo("cars196", Cars196, ("train", "test"), hand_download=CARS_HAND_DOWNLOAD),
        DatasetInfo(
            "sop",
            StanfordOnlineProducts,
            ("train", "test"),
            (
                Archive(
                    "ftp://cs.stanford.edu/cs/cvgl/Stanford_Online_Products.zip",
                    "7f73d41a2f44250d4779881525aea32e",
                ),
            ),
        ),
        DatasetInfo(
            "inshop", InShop, ("train", "query", "gallery"), hand_download=INSHOP_HAND_DOWNLOAD
        ),
        DatasetInfo(
            "lfw",
            LFW,
            ("pairs",),
            (
                Archive(
                    "http://vis-www.cs.umass.edu/lfw/lfw.tgz", "a17d05bd522c52d84eca14327a23d494"
                ),
                Archive(
                    "http://vis-www.cs.umass.edu/lfw/pairs.txt",
                    "9f1ba174e4e1c508ff7cdf10ac338a7d",
                    extract=False,
                ),
            ),
        ),
        # your own images: no official counts, the splits come from the folder or the table
        DatasetInfo("folder", FolderDataset, ("train", "test"), hand_download=OWN_DATA),
        DatasetInfo("csv", CsvDataset, ("train", "test"), hand_download=OWN_DATA),
    )
}


def dataset_info(name: str) -> DatasetInfo:
    """The registry entry of ``name``, or a ValueError listing the known names."""
    try:
        return DATASETS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}") from None


def default_root(name: str) -> Path:
    """``$DML_DATA/<name>`` (default ``~/dml_data/<name>``), as configs/paths/default.yaml."""
    return Path(os.environ.get("DML_DATA", Path.home() / "dml_data")).expanduser() / name
