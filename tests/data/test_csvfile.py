"""CsvDataset: path,label[,split] rows, header optional, shared query/gallery labels."""

import pytest

from dml.data import CsvDataset
from dml.data.image_list import DatasetLayoutError


def _images(write_image, root, n):
    for k in range(n):
        write_image(root / "imgs" / f"{k}.jpg", (10 + k, 10))


def test_split_column_and_shared_query_gallery_labels(tmp_path, image_writer):
    _images(image_writer, tmp_path, 8)
    rows = [
        "path,label,split",
        "imgs/0.jpg,7,train",
        "imgs/1.jpg,7,train",
        "imgs/2.jpg,3,train",
        "imgs/3.jpg,10,query",
        "imgs/4.jpg,10,gallery",
        "imgs/5.jpg,12,gallery",
        "imgs/6.jpg,12,query",
        "imgs/7.jpg,20,gallery",
    ]
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    train = CsvDataset(tmp_path, "train")
    assert train.class_ids.tolist() == [7, 7, 3] and train.labels.tolist() == [1, 1, 0]
    query, gallery = CsvDataset(tmp_path, "query"), CsvDataset(tmp_path, "gallery")
    assert list(query.classes) == list(gallery.classes) == [10, 12, 20]
    assert query.labels.tolist() == [0, 1] and gallery.labels.tolist() == [0, 1, 2]
    image, _ = gallery[2]
    assert image.size == (17, 10)
    with pytest.raises(ValueError, match="no row has split 'val'"):
        CsvDataset(tmp_path, "val")


def test_no_split_column_is_class_disjoint_and_no_header(tmp_path, image_writer):
    _images(image_writer, tmp_path, 6)
    rows = [f"imgs/{k}.jpg,{name}" for k, name in enumerate(["b", "a", "c", "d", "a", "d"])]
    (tmp_path / "mine.csv").write_text("\n".join(rows) + "\n")
    train = CsvDataset(tmp_path, "train", csv_file="mine.csv")
    test = CsvDataset(tmp_path, "test", csv_file=str(tmp_path / "mine.csv"))
    assert set(train.class_ids.tolist()) == {"a", "b"} and set(test.class_ids.tolist()) == {
        "c",
        "d",
    }
    assert len(CsvDataset(tmp_path, "all", csv_file="mine.csv")) == 6


def test_errors(tmp_path):
    with pytest.raises(DatasetLayoutError, match="labels.csv"):
        CsvDataset(tmp_path)
    (tmp_path / "labels.csv").write_text("a.jpg\n")
    with pytest.raises(ValueError, match="path,label"):
        CsvDataset(tmp_path)
    (tmp_path / "labels.csv").write_text("a.jpg,1,train\nb.jpg,2\n")
    with pytest.raises(ValueError, match="every row"):
        CsvDataset(tmp_path)
