"""Shared dataset behaviour: bad and missing images, skip_bad_images, counts, transforms."""

import warnings

import numpy as np
import pytest
import torch

from dml.data import CUB200
from dml.data.decode import BadImageError
from dml.data.image_list import BadImageWarning, DatasetCountWarning
from dml.data.transforms import build_transform

pytestmark = pytest.mark.filterwarnings("ignore::dml.data.image_list.DatasetCountWarning")


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_truncated_image_error_names_file(cub_root):
    root, _ = cub_root
    data = CUB200(root, split="train")
    bad = data.image_root / data.paths[4]
    _truncate(bad)
    with pytest.raises(BadImageError, match=str(bad).replace("/", ".")) as err:
        data[4]
    assert "skip_bad_images=true" in str(err.value)


def test_not_an_image_error_names_file(cub_root):
    root, _ = cub_root
    data = CUB200(root, split="train")
    bad = data.image_root / data.paths[0]
    bad.write_bytes(b"this is not a jpeg")
    with pytest.raises(BadImageError, match="cannot decode"):
        data[0]


def test_skip_bad_images_substitutes_same_class_warns_once_and_counts(cub_root):
    root, _ = cub_root
    data = CUB200(root, split="train", skip_bad_images=True)
    _truncate(data.image_root / data.paths[2])
    with pytest.warns(BadImageWarning, match="replacing unreadable images") as caught:
        image, label = data[2]
    assert len(caught) == 1
    assert label == data.labels[2]
    assert image.size[1] - 10 == data.class_ids[2]  # an image of the same class
    assert data.bad_images == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error", BadImageWarning)  # the training loads again: no new warning
        data[2]
    assert data.bad_images == 2


def test_drop_unreadable_leaves_bad_images_out_of_an_eval_split(cub_root):
    root, _ = cub_root
    data = CUB200(root, split="test", skip_bad_images=True, crop_to_bbox=True)
    before, boxes = list(data.paths), data.boxes.copy()
    _truncate(data.image_root / data.paths[1])
    (data.image_root / data.paths[4]).write_bytes(b"not an image")
    with pytest.warns(BadImageWarning, match="dropped 2 unreadable image") as caught:
        assert data.drop_unreadable() == 2
    assert len(caught) == 1
    assert data.paths == [p for k, p in enumerate(before) if k not in (1, 4)]
    assert [p for p, _ in data.dropped_images] == [before[1], before[4]]
    assert len(data.labels) == len(data.class_ids) == len(data) == len(before) - 2
    assert np.array_equal(data.boxes, np.delete(boxes, [1, 4], axis=0))
    with warnings.catch_warnings():
        warnings.simplefilter(
            "error", BadImageWarning
        )  # every evaluation: silent, nothing replaced
        assert [data[i][1] for i in range(len(data))] == data.labels.tolist()
    # an image that breaks after the check is an error, never a duplicate of another image
    (data.image_root / data.paths[0]).write_bytes(b"broken later")
    with pytest.raises(BadImageError, match="readable when split 'test' was checked"):
        data[0]


def test_missing_files_error_or_skip(cub_root):
    root, _ = cub_root
    data = CUB200(root, split="test")
    (data.image_root / data.paths[1]).unlink()
    with pytest.raises(BadImageError, match="1 listed image file"):
        CUB200(root, split="test")
    with pytest.warns(BadImageWarning, match="skipping 1 missing"):
        skipped = CUB200(root, split="test", skip_bad_images=True)
    assert len(skipped) == len(data) - 1
    assert data.paths[1] not in skipped.paths
    assert skipped.dropped_images == [(data.paths[1], data.class_ids[1])]


def test_counts_warning_can_be_turned_off(cub_root):
    with warnings.catch_warnings():
        warnings.simplefilter("error", DatasetCountWarning)
        CUB200(cub_root[0], split="train", check_counts=False)


def test_transform_gives_tensors_and_works_in_dataloader(cub_root):
    data = CUB200(cub_root[0], split="train", transform=build_transform({"resize": 16, "crop": 12}))
    loader = torch.utils.data.DataLoader(data, batch_size=4)
    images, labels = next(iter(loader))
    assert images.shape == (4, 3, 12, 12) and labels.dtype == torch.int64


def test_cache_smaller_than_transform_needs_warns(cub_root, tmp_path):
    transform = build_transform({"resize": 64, "crop": 48})
    with pytest.warns(UserWarning, match="cache_size=32 is below the 64 px"):
        CUB200(cub_root[0], "train", transform=transform, cache_dir=tmp_path, cache_size=32)


def test_dataset_pickles_for_spawned_workers(cub_root, tmp_path):
    import pickle

    transform = build_transform({"resize": 16, "crop": 12}, normalize="bgr255")
    data = CUB200(cub_root[0], "test", transform=transform, crop_to_bbox=True, cache_dir=tmp_path)
    clone = pickle.loads(pickle.dumps(data))
    assert torch.equal(clone[3][0], data[3][0]) and clone.labels.tolist() == data.labels.tolist()
