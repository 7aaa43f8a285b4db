"""The index of the file-backed datasets, by config name; each is described in its class module.

MODULES lists the dataset modules; each module's ``DATASET`` (dml.data.description) is read from
its source without running it, so `dml-data --help`, a mistyped name and `dml-data download`
answer without importing torch (the module, and with it torch, is imported on first use of
`DatasetInfo.cls`). A new dataset: write its module with a DATASET and add the module here.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from pathlib import Path

from dml.data.description import DatasetInfo, read_description

__all__ = ["DATASETS", "MODULES", "DatasetInfo", "dataset_info", "default_root", "describe"]

#: the dataset modules, in the order `dml-data` lists their names
MODULES = (
    "dml.data.cub",
    "dml.data.cars",
    "dml.data.sop",
    "dml.data.inshop",
    "dml.data.lfw",
    "dml.data.folder",
    "dml.data.csvfile",
)


def describe(module: str) -> DatasetInfo:
    """The DATASET of dataset module ``module`` ("dml.data.cub"), from its source when it has one
    (no import), else from the imported module."""
    spec = importlib.util.find_spec(module)
    if spec is not None and spec.origin and spec.origin.endswith(".py"):
        return read_description(spec.origin)
    return importlib.import_module(module).DATASET


DATASETS: dict[str, DatasetInfo] = {info.name: info for info in map(describe, MODULES)}


def dataset_info(name: str) -> DatasetInfo:
    """The registry entry of ``name``, or a ValueError listing the known names."""
    try:
        return DATASETS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}") from None


def default_root(name: str) -> Path:
    """``$DML_DATA/<name>`` (default ``~/dml_data/<name>``), as configs/paths/default.yaml."""
    return Path(os.environ.get("DML_DATA", Path.home() / "dml_data")).expanduser() / name
