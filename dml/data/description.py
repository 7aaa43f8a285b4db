"""What one file-backed dataset is, written once in its class module and read without running it.

A dataset module (dml/data/cub.py, ...) holds a module-level ``DATASET = DatasetInfo(...)``: its
config name, class, splits, official counts, public archives with md5 or the note that says how to
get the files by hand. The class reads its name and counts from it; dml.data.registry reads it
from the source (`read_description`), so `dml-data` can list, download and explain a dataset
without importing the module and torch.
"""

from __future__ import annotations

import ast
import importlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dml.data.download import Archive

if TYPE_CHECKING:
    from dml.data.image_list import ImageListDataset


@dataclass(frozen=True)
class DatasetInfo:
    """A dataset's description: `name` is its config name (configs/dataset/<name>.yaml), `target`
    its class or the dotted path to it ("dml.data.cub.CUB200"), `splits` those that `dml-data check`
    and `cache` visit, `archives` its public files, `note` how to get the files when there are no
    archives (ROOT stands for the dataset folder), `counts` split -> (images, classes or None) of
    the official release."""

    name: str
    target: type[ImageListDataset] | str
    splits: tuple[str, ...]
    archives: tuple[Archive, ...] = field(default_factory=tuple)
    note: str | None = None
    counts: Mapping[str, tuple[int, int | None]] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if not self.archives and not self.note:
            raise ValueError(
                f"dataset {self.name!r} has neither archives nor a note: give DatasetInfo a note "
                "that says how to get the files (ROOT stands for the dataset folder)"
            )

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
        return None if self.archives else self.note


# the calls a DATASET may make; everything else in it must be a literal
_CALLS = {"DatasetInfo": DatasetInfo, "Archive": Archive}


def _static_value(node: ast.expr, path: Path) -> Any:
    """The value of a DATASET expression: literals, tuples and the calls in _CALLS."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _CALLS:
        if all(k.arg is not None for k in node.keywords):
            return _CALLS[node.func.id](
                *(_static_value(a, path) for a in node.args),
                **{k.arg: _static_value(k.value, path) for k in node.keywords},
            )
    elif isinstance(node, ast.Tuple):
        return tuple(_static_value(e, path) for e in node.elts)
    else:
        try:
            return ast.literal_eval(node)
        except ValueError:
            pass
    raise ValueError(
        f"{path}:{node.lineno}: DATASET may hold only literals, tuples, Archive(...) and "
        f"DatasetInfo(...), not {ast.unparse(node)!r}; write the value out there (the registry "
        "reads DATASET without running the module, so that dml-data answers without torch)"
    )


def read_description(path: str | os.PathLike) -> DatasetInfo:
    """The ``DATASET = DatasetInfo(...)`` of the Python file ``path``, read without running it."""
    path = Path(path)
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for node in tree.body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == [
            "DATASET"
        ]:
            info = _static_value(node.value, path)
            if isinstance(info, DatasetInfo):
                return info
    raise ValueError(f"{path}: expected a module-level DATASET = DatasetInfo(...)")
