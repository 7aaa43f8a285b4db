"""SOP: header line, test class ids from 11,319, paths relative to Stanford_Online_Products/."""

import pytest

from dml.data import StanfordOnlineProducts
from dml.data.image_list import DatasetLayoutError

pytestmark = pytest.mark.filterwarnings("ignore::dml.data.image_list.DatasetCountWarning")


@pytest.mark.parametrize("split", ["train", "test"])
def test_rows_and_labels(sop_root, split):
    root, rows = sop_root
    data = StanfordOnlineProducts(root, split=split)
    assert len(data) == len(rows[split])
    assert data.class_ids.tolist() == [c for _, c, _ in rows[split]]
    assert data.image_ids == [i for i, _, _ in rows[split]]
    assert data.labels.min() == 0 and data.labels.max() == len(set(data.class_ids.tolist())) - 1
    for k in range(len(data)):
        image, label = data[k]
        image_id, cls, _ = rows[split][k]
        assert image.size == (10 + image_id, 10 + cls % 100)
        assert data.classes[label] == cls


def test_test_class_ids_start_at_11319(sop_root):
    data = StanfordOnlineProducts(sop_root[0], split="test")
    assert data.classes[0] == 11319 and data.labels[0] == 0


def test_bad_header(sop_root):
    path = sop_root[0] / "Stanford_Online_Products" / "Ebay_train.txt"
    path.write_text("\n".join(path.read_text().splitlines()[1:]) + "\n")
    with pytest.raises(ValueError, match="header"):
        StanfordOnlineProducts(sop_root[0])


def test_missing(tmp_path):
    with pytest.raises(DatasetLayoutError, match="dml-data download sop"):
        StanfordOnlineProducts(tmp_path, split="test")
