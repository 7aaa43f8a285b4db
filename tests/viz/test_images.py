import numpy as np
import pytest
import torch
from PIL import Image

from dml.data import FolderDataset
from dml.data.transforms import build_transform
from dml.viz.images import as_pil, raw_image


def test_digits_item_is_the_stored_image_and_the_transform_is_restored(digits):
    image = raw_image(digits, 3, size=128)
    assert image.mode == "RGB" and image.size == (16, 16)  # small images are not enlarged
    assert np.array_equal(np.asarray(image)[..., 0], digits.images[3])
    assert digits.transform is not None
    assert isinstance(digits[3][0], torch.Tensor)


def test_file_dataset_is_read_without_its_transform(tmp_path):
    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        for i in range(2):
            Image.new("RGB", (300, 200), (200, 10 * i, 0)).save(tmp_path / cls / f"{i}.png")
    ds = FolderDataset(tmp_path, split="all", transform=build_transform({"resize": 32, "crop": 32}))
    image = raw_image(ds, 1, size=64)
    assert image.size == (64, 43)  # thumbnail keeps the aspect ratio
    assert tuple(np.asarray(image)[0, 0]) == (200, 10, 0)


def test_normalised_tensor_is_rescaled_for_display():
    t = torch.tensor([[[-2.0, 0.0], [1.0, 2.0]]]).expand(3, 2, 2)
    arr = np.asarray(as_pil(t))
    assert arr.shape == (2, 2, 3)
    assert arr[0, 0, 0] == 0 and arr[1, 1, 0] == 255 and arr[0, 1, 0] == 128


def test_bad_shape_is_named():
    with pytest.raises(ValueError, match="shape"):
        as_pil(np.zeros((2, 3, 4, 5)))
