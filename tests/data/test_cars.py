"""Cars196: cars_annos.mat via scipy, classes 1-98 / 99-196 regardless of the test flag."""

import pytest

from dml.data import Cars196
from dml.data.image_list import DatasetLayoutError

pytestmark = pytest.mark.filterwarnings("ignore::dml.data.image_list.DatasetCountWarning")


@pytest.mark.parametrize(
    "split,expected", [("train", [1, 1, 2, 98, 98]), ("test", [99, 150, 150, 196, 196])]
)
def test_split_by_class_ignoring_test_flag(cars_root, split, expected):
    root, table = cars_root
    data = Cars196(root, split=split)
    assert data.class_ids.tolist() == expected
    by_path = {rel: (k, cls) for k, cls, rel in table}
    for i in range(len(data)):
        image, label = data[i]
        k, cls = by_path[data.paths[i]]
        assert image.size == (10 + k, 10 + cls)
        assert data.classes[label] == cls
    assert sorted(set(data.labels.tolist())) == list(range(len(set(expected))))


def test_crop_to_bbox_one_based_inclusive(cars_root):
    data = Cars196(cars_root[0], split="train", crop_to_bbox=True)
    image, _ = data[0]
    assert data.boxes[0].tolist() == [2.0, 3.0, 7.0, 9.0]  # 1-based inclusive 3..7, 4..9
    assert image.size == (5, 6)


def test_missing_annotations_explain_hand_download(tmp_path):
    with pytest.raises(DatasetLayoutError, match="cars_annos.mat") as err:
        Cars196(tmp_path)
    assert "car_ims" in str(err.value) and "dml-data check cars196" in str(err.value)


def test_wrong_mat_file(tmp_path):
    from scipy.io import savemat

    savemat(tmp_path / "cars_annos.mat", {"something": 1})
    with pytest.raises(ValueError, match="not the Stanford Cars annotation file"):
        Cars196(tmp_path)
