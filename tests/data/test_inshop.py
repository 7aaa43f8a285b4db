"""In-Shop: two header lines, train | query | gallery, query and gallery share a label space."""

import pytest

from dml.data import InShop
from dml.data.image_list import DatasetLayoutError

pytestmark = pytest.mark.filterwarnings("ignore::dml.data.image_list.DatasetCountWarning")


@pytest.mark.parametrize("split,n", [("train", 5), ("query", 3), ("gallery", 7)])
def test_splits(inshop_root, split, n):
    root, rows = inshop_root
    data = InShop(root, split=split)
    assert len(data) == n
    assert data.paths == [p for p, _, s in rows if s == split]
    for k in range(n):
        image, _ = data[k]
        assert image.size[1] == 10 + int(data.class_ids[k][3:])


def test_query_and_gallery_labels_agree(inshop_root):
    query, gallery = InShop(inshop_root[0], "query"), InShop(inshop_root[0], "gallery")
    q = dict(zip(query.class_ids.tolist(), query.labels.tolist(), strict=True))
    g = dict(zip(gallery.class_ids.tolist(), gallery.labels.tolist(), strict=True))
    for item, label in q.items():
        assert g[item] == label
    assert (
        list(query.classes)
        == list(gallery.classes)
        == ["id_00000002", "id_00000005", "id_00000009"]
    )


def test_train_labels_contiguous(inshop_root):
    data = InShop(inshop_root[0], "train")
    assert sorted(set(data.labels.tolist())) == [0, 1]


def test_count_line_must_match(inshop_root):
    path = inshop_root[0] / "list_eval_partition.txt"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(["99"] + lines[1:]) + "\n")
    with pytest.raises(ValueError, match="line 1 says 99"):
        InShop(inshop_root[0])


def test_missing_partition_explains_hand_download(tmp_path):
    with pytest.raises(DatasetLayoutError, match="Google Drive"):
        InShop(tmp_path)
