"""The file-backed datasets by config name: class, splits, public archives or hand-download note.

The dataset classes (and with them torch) are imported on first use of `DatasetInfo.cls`, so that
`dml-data --help` and a mistyped name answer at once.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from dml.data.download import Archive

if TYPE_CHECKING:
    from dml.data.image_list import ImageListDataset

OWN_DATA = (
    "this is your own data, nothing to download: put it under ROOT (see the README's "
    "'Own data'), then check it with `dml-data check <folder|csv> --root ROOT --verify-images`"
)


@dataclass(frozen=True)
class DatasetInfo:
    """A dataset's entry: `target` is its class or the dotted path to it ("dml.data.cub.CUB200");
    `note` says where to get files that cannot be downloaded (default: the class module's
    HAND_DOWNLOAD text)."""

    name: str
    target: type[ImageListDataset] | str
    splits: tuple[str, ...]
    archives: tuple[Archive, ...] = field(default_factory=tuple)
    note: str | None = None

    @property
    def cls(self) -> type[ImageListDataset]:
        """The dataset class, imported now if the entry names it by path."""
        if isinstance(self.target, str):
            module, _, name = self.target.rpartition(".")
            return getattr(importlib.import_module(module), name)
        return self.target

    @property
    def hand_download(self) -> str | None:
        """How to get the files by hand (None when the archives download), ROOT for the folder."""
        if self.note is not None or self.archives:
            return self.note
        return getattr(importlib.import_module(self.cls.__module__), "HAND_DOWNLOAD", None)


DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo(
            "cub200",
            "dml.data.cub.CUB200",
            ("train", "test"),
            (
                Archive(
                    "https://data.caltech.edu/records/65de6-vp158/files/CUB_200_2011.tgz",
                    "97eceeb196236b17998738112f37df78",
                ),
            ),
        ),
        DatasetInfo("cars196", "dml.data.cars.Cars196", ("train", "test")),
        DatasetInfo(
            "sop",
            "dml.data.sop.StanfordOnlineProducts",
            ("train", "test"),
            (
                Archive(
                    "ftp://cs.stanford.edu/cs/cvgl/Stanford_Online_Products.zip",
                    "7f73d41a2f44250d4779881525aea32e",
                ),
            ),
        ),
        DatasetInfo("inshop", "dml.data.inshop.InShop", ("train", "query", "gallery")),
        DatasetInfo(
            "lfw",
            "dml.data.lfw.LFW",
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
        DatasetInfo("folder", "dml.data.folder.FolderDataset", ("train", "test"), note=OWN_DATA),
        DatasetInfo("csv", "dml.data.csvfile.CsvDataset", ("train", "test"), note=OWN_DATA),
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
