"""LFW: images + pairs.txt folds; pairs index the dataset, same/fold per pair."""

import numpy as np
import pytest

from dml.data import LFW
from dml.data.lfw import image_path, read_pairs

pytestmark = pytest.mark.filterwarnings("ignore::dml.data.image_list.DatasetCountWarning")


def test_pairs_same_fold(lfw_root):
    root, pairs = lfw_root
    data = LFW(root)
    assert data.pairs.shape == (12, 2) and data.same.dtype == bool and data.fold.dtype == np.int64
    assert data.same.tolist() == [True] * 3 + [False] * 3 + [True] * 3 + [False] * 3
    assert data.fold.tolist() == [0] * 6 + [1] * 6
    assert data.num_folds == 2
    for (a, i, b, j), (ia, ib), same in zip(pairs, data.pairs, data.same, strict=True):
        assert data.paths[ia] == image_path(a, i) and data.paths[ib] == image_path(b, j)
        assert (data.labels[ia] == data.labels[ib]) == same
        assert data.classes[data.labels[ia]] == a


def test_pairs_split_holds_only_used_images_and_all_holds_every_image(lfw_root):
    root, _ = lfw_root
    used = LFW(root)
    assert "Unused_Person" not in set(used.class_ids.tolist())
    every = LFW(root, split="all")
    assert len(every) == 12 and "Unused_Person" in set(every.class_ids.tolist())
    assert every.pairs.shape == (12, 2)
    image, label = every[int(every.pairs[0, 0])]
    assert every.classes[label] == "Abel_Pacheco" and image.size == (11, 10)


def test_read_pairs_rejects_bad_header_and_short_file(tmp_path):
    path = tmp_path / "pairs.txt"
    path.write_text("ten folds\n")
    with pytest.raises(ValueError, match="header"):
        read_pairs(path)
    path.write_text("10\t300\nAbel_Pacheco\t1\t4\n")
    with pytest.raises(ValueError, match="6000 pairs but 1 lines"):
        read_pairs(path)
    path.write_text("1\t1\nAbel_Pacheco\t1\nA\t1\tB\t2\n")
    with pytest.raises(ValueError, match="pairs.txt:2"):
        read_pairs(path)


def test_missing_image_folder(tmp_path):
    (tmp_path / "pairs.txt").write_text("1\t1\nA\t1\t2\nA\t1\tB\t1\n")
    with pytest.raises(FileNotFoundError, match="dml-data download lfw"):
        LFW(tmp_path)


def test_train_split_is_identity_disjoint_from_pairs(lfw_root, image_writer):
    root, _ = lfw_root
    for i in (1, 2):
        image_writer(root / "lfw" / "New_Person" / f"New_Person_{i:04d}.jpg", (9, 9))
    train = LFW(root, split="train")
    assert set(train.class_ids.tolist()) == {"New_Person"}  # Unused_Person has 1 image only
    assert len(train) == 2 and train.pairs.shape == (0, 2) and len(train.same) == 0


def test_dropping_an_unreadable_image_drops_its_pairs_and_reindexes_the_rest(lfw_root):
    root, pairs = lfw_root
    data = LFW(root, skip_bad_images=True)
    bad = data.paths[int(data.pairs[0, 0])]
    (data.image_root / bad).write_bytes(b"not a jpeg")
    with pytest.warns(UserWarning, match="dropped 1 unreadable image"):
        assert data.drop_unreadable() == 1
    assert bad not in data.paths and len(data.pairs) == len(data.same) == len(data.fold)
    kept = [
        (p, s)
        for p, s in zip(pairs, LFW(root).same, strict=True)
        if bad not in (image_path(p[0], p[1]), image_path(p[2], p[3]))
    ]
    assert 0 < len(kept) < len(pairs) and len(data.pairs) == len(kept)
    for ((a, i, b, j), same), (ia, ib), got_same in zip(kept, data.pairs, data.same, strict=True):
        assert data.paths[ia] == image_path(a, i) and data.paths[ib] == image_path(b, j)
        assert got_same == same
