"""CUB200: join by image id, DML class split 1-100 / 101-200, boxes, layout errors."""

import numpy as np
import pytest

from dml.data import CUB200
from dml.data.image_list import DatasetCountWarning, DatasetLayoutError

pytestmark = pytest.mark.filterwarnings("ignore::dml.data.image_list.DatasetCountWarning")


@pytest.mark.parametrize("split,classes", [("train", {1, 2, 100}), ("test", {101, 150, 200})])
def test_split_is_class_disjoint_and_joined_by_image_id(cub_root, split, classes):
    root, table = cub_root
    data = CUB200(root, split=split)
    assert set(data.class_ids.tolist()) == classes
    assert len(data) == 9
    assert set(data.labels.tolist()) == {0, 1, 2}
    by_id = {i: (c, rel) for i, c, rel in table}
    for k in range(len(data)):
        image, label = data[k]
        image_id = int(data.image_ids[k])
        cls, rel = by_id[image_id]
        assert data.paths[k] == rel
        assert image.size == (10 + image_id, 10 + cls)  # the file really is that image
        assert data.classes[label] == cls == data.class_ids[k]
    assert data.labels.dtype == np.int64 and data.labels.ndim == 1


def test_image_ids_ascending(cub_root):
    data = CUB200(cub_root[0], split="train")
    assert np.all(np.diff(data.image_ids) > 0)


def test_crop_to_bbox(cub_root):
    data = CUB200(cub_root[0], split="test", crop_to_bbox=True)
    image, _ = data[0]
    assert image.size == (5, 6)  # x y w h = 2 3 5 6
    assert data.boxes[0].tolist() == [2.0, 3.0, 7.0, 9.0]


def test_accepts_inner_folder_as_root(cub_root):
    assert len(CUB200(cub_root[0] / "CUB_200_2011", split="train")) == 9


def test_count_mismatch_warns(cub_root):
    with pytest.warns(DatasetCountWarning, match="5,864 images"):
        CUB200(cub_root[0], split="train")


def test_missing_layout_says_how_to_get_it(tmp_path):
    with pytest.raises(DatasetLayoutError, match="dml-data download cub200"):
        CUB200(tmp_path)


def test_bad_split(cub_root):
    with pytest.raises(ValueError, match="train"):
        CUB200(cub_root[0], split="val")
