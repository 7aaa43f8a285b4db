"""FolderDataset: class sub-folders, split sub-folders or a class-disjoint cut."""

import pytest

from dml.data import FolderDataset
from dml.data.image_list import DatasetLayoutError


def _classes(write_image, root, names, n=2, suffix=".png"):
    for c in names:
        for k in range(n):
            write_image(root / c / f"{k}{suffix}", (8 + k, 8))


def test_class_disjoint_cut_without_split_folders(tmp_path, image_writer):
    _classes(image_writer, tmp_path, ["cat", "dog", "eel", "fox"])
    (tmp_path / "notes.txt").write_text("ignored")
    train, test = FolderDataset(tmp_path, "train"), FolderDataset(tmp_path, "test")
    assert set(train.class_ids.tolist()) == {"cat", "dog"}
    assert set(test.class_ids.tolist()) == {"eel", "fox"}
    assert len(FolderDataset(tmp_path, "all")) == 8
    assert len(FolderDataset(tmp_path, "train", train_fraction=0.75)) == 6
    image, label = test[0]
    assert image.size == (8, 8) and test.classes[label] == "eel"


def test_split_folders(tmp_path, image_writer):
    _classes(image_writer, tmp_path / "train", ["a", "b"], suffix=".jpg")
    _classes(image_writer, tmp_path / "test", ["c", "d", "e"], n=1)
    assert len(FolderDataset(tmp_path, "train")) == 4
    assert set(FolderDataset(tmp_path, "test").class_ids.tolist()) == {"c", "d", "e"}


def test_errors(tmp_path, image_writer):
    with pytest.raises(DatasetLayoutError, match="not a folder"):
        FolderDataset(tmp_path / "missing")
    (tmp_path / "empty_class").mkdir()
    with pytest.raises(DatasetLayoutError, match="no images"):
        FolderDataset(tmp_path)
    _classes(image_writer, tmp_path, ["only"])
    with pytest.raises(ValueError, match="at least 2 classes"):
        FolderDataset(tmp_path, "train")
    with pytest.raises(DatasetLayoutError, match="query"):
        FolderDataset(tmp_path, "query")
