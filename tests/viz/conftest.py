"""Fixtures for the picture tests: the embedded digits test split and raw-pixel embeddings of it
(a real embedding where nearest neighbours are mostly right, so the pictures have content)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from dml.data import Digits
from dml.data.transforms import build_transform


def _png_size(path) -> tuple[int, int]:
    with Image.open(path) as im:
        assert im.format == "PNG"
        im.load()  # decodes every pixel: a truncated file fails here
        return im.size


@pytest.fixture(scope="session")
def png_size():
    """png_size(path) -> (width, height), after checking that PIL decodes the file as a complete PNG."""
    return _png_size


@pytest.fixture(scope="session")
def digits():
    """The digits test split (classes 5-9) with the ImageNet-normalised eval transform."""
    return Digits(
        split="test",
        image_size=16,
        transform=build_transform({"resize": 16, "crop": 16}, normalize="imagenet"),
    )


@pytest.fixture(scope="session")
def digit_embeddings(digits):
    """(L2-normalised raw pixels [N, 768], labels [N]) of the digits test split."""
    x = torch.stack([digits[i][0] for i in range(len(digits))])
    return F.normalize(x.flatten(1), dim=1), torch.as_tensor(digits.labels)


@pytest.fixture
def rng():
    return np.random.default_rng(0)
