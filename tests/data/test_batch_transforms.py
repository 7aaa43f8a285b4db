"""Whole-batch tensor augmentation of in-memory images (dml.data.batch_transforms): the same pixels
as the per-image pipeline where nothing is random, torchvision's crop ranges where it is, seeded by
the batch, and a resumed run that augments its batches exactly as the uninterrupted one."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from dml.data.batch_transforms import (
    ArrayBatches,
    BatchTransform,
    batch_generator,
    in_memory_images,
    supports,
)
from dml.data.datamodule import DMLDataModule
from dml.data.embedded import Digits
from dml.data.folds import ClassSubset
from dml.data.transforms import build_transform
from dml.training.checkpointing import read_checkpoint
from tests.composing import compose_train
from tests.integration.test_resume import _recorded_train

RNG = np.random.default_rng(0)
COLOUR = RNG.integers(0, 256, size=(6, 20, 20, 3), dtype=np.uint8)
RRC = {"crop": 20, "random_resized_crop": True, "scale": [0.5, 1.0], "ratio": [0.8, 1.25]}


def _batch(images: np.ndarray) -> torch.Tensor:
    return ArrayBatches(images, np.arange(len(images)), np.zeros(len(images))).__getitems__(
        range(6)
    )[0]


def test_array_batches_fetch_a_batch_as_one_uint8_tensor():
    data = ArrayBatches(COLOUR, np.array([5, 4, 3, 2, 1, 0]), np.arange(6))
    x, y = data.__getitems__([0, 2])
    assert x.dtype == torch.uint8 and x.shape == (2, 3, 20, 20)
    assert torch.equal(x[1], torch.from_numpy(COLOUR[3]).permute(2, 0, 1)) and y.tolist() == [0, 2]
    grey = ArrayBatches(COLOUR[..., 0], np.arange(6), np.arange(6)).__getitems__([1])[0]
    assert grey.shape == (1, 1, 20, 20)


@pytest.mark.parametrize("normalize", ["imagenet", "inception", "bgr255", "none"])
@pytest.mark.parametrize("grey", [False, True])
def test_without_random_steps_it_equals_the_per_image_pipeline(normalize, grey):
    images = COLOUR[..., 0] if grey else COLOUR
    spec = {"resize": 20, "crop": 20}
    per_image = build_transform(spec, normalize=normalize)
    expected = torch.stack([per_image(Image.fromarray(im).convert("RGB")) for im in images])
    got = BatchTransform(spec, normalize)(
        ArrayBatches(images, np.arange(6), np.zeros(6)).__getitems__(range(6))[0],
        batch_generator(0, 0, 0, 0),
    )
    assert got.shape == expected.shape
    assert torch.allclose(got, expected, atol=1e-4)


def test_crop_boxes_follow_torchvision_ranges():
    transform = BatchTransform(RRC, "none")
    boxes = transform._boxes(4000, 20, 20, batch_generator(1, 0, 0, 0))
    x0, y0, w, h = boxes.unbind(1)
    assert (x0 >= 0).all() and (y0 >= 0).all() and (x0 + w <= 20).all() and (y0 + h <= 20).all()
    area = w * h / 400
    # rounding w and h to pixels moves the area a little outside the drawn fraction
    assert area.min() > 0.5 - 0.06 and area.max() <= 1.0
    assert (w / h).min() > 0.8 - 0.1 and (w / h).max() < 1.25 + 0.1
    assert len(set(map(tuple, boxes.tolist()))) > 100  # random boxes, not one


def test_full_crop_without_resampling_changes_nothing_but_the_flips():
    spec = {"crop": 20, "random_resized_crop": True, "scale": [1, 1], "ratio": [1, 1], "flip": True}
    x = _batch(COLOUR)
    out = BatchTransform(spec, "none")(x, batch_generator(0, 0, 0, 3)) * 255
    flipped = [
        torch.allclose(o, xi.float().flip(-1), atol=1e-3) for o, xi in zip(out, x, strict=True)
    ]
    same = [torch.allclose(o, xi.float(), atol=1e-3) for o, xi in zip(out, x, strict=True)]
    assert all(f or s for f, s in zip(flipped, same, strict=True)) and any(flipped)


def test_brightness_scales_each_image_by_one_factor_in_range():
    x = torch.full((64, 3, 8, 8), 100, dtype=torch.uint8)
    out = BatchTransform({"brightness": 0.2}, "none")(x, batch_generator(0, 0, 0, 0)) * 255
    factors = out.mean((1, 2, 3)) / 100
    assert factors.min() >= 0.8 - 1e-4 and factors.max() <= 1.2 + 1e-4
    assert factors.std() > 0.05  # drawn per image
    assert torch.allclose(out, out[:, :1, :1, :1].expand_as(out))  # no hue change


def test_contrast_keeps_the_mean_grey_level():
    x = _batch(COLOUR)
    plain = BatchTransform({}, "none")(x, batch_generator(0, 0, 0, 0))
    out = BatchTransform({"contrast": 0.3}, "none")(x, batch_generator(0, 0, 0, 0))
    luma = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    grey = lambda t: (t * luma).sum(1).mean((1, 2))  # noqa: E731
    # clamping at 0 and 1 moves it only slightly for these mid-grey random images
    assert torch.allclose(grey(out), grey(plain), atol=0.02)
    assert not torch.allclose(out, plain)


def test_the_draw_is_a_function_of_seed_rank_epoch_and_batch():
    transform, x = (
        BatchTransform(RRC | {"brightness": 0.1, "contrast": 0.1}, "inception"),
        _batch(COLOUR),
    )
    first = transform(x, batch_generator(0, 0, 2, 5))
    assert torch.equal(first, transform(x, batch_generator(0, 0, 2, 5)))
    for other in [(1, 0, 2, 5), (0, 1, 2, 5), (0, 0, 3, 5), (0, 0, 2, 6)]:
        assert not torch.equal(first, transform(x, batch_generator(*other)))


def test_specs_with_per_image_steps_keep_the_per_image_path():
    assert supports(RRC | {"flip": True, "brightness": 0.1})
    assert supports({"resize": 16, "affine": None, "color_jitter": 0})  # switched off
    assert not supports({"affine": {"degrees": 10}})
    assert not supports({"color_jitter": 0.4})
    with pytest.raises(ValueError, match="per-image pipeline"):
        BatchTransform({"random_crop": True, "crop": 8}, "none")


def test_in_memory_images_sees_through_class_subsets():
    digits = Digits(split="test", image_size=8)
    images, indices = in_memory_images(ClassSubset(digits, [6, 8]))
    assert images is digits.images and (digits.labels[indices] % 2 == 0).all()
    assert in_memory_images(torch.utils.data.TensorDataset(torch.zeros(3))) is None


def _datamodule(spec: dict, batch_transforms: bool) -> DMLDataModule:
    cfg = {
        "name": "digits",
        "train": {"_target_": "dml.data.Digits", "split": "train", "image_size": 8},
        "test": {"_target_": "dml.data.Digits", "split": "test", "image_size": 8},
        "transform": {"train": spec, "eval": {"resize": 8, "crop": 8}},
        "classes_per_batch": 2,
        "m_per_class": 3,
        "batch_transforms": batch_transforms,
    }
    dm = DMLDataModule(cfg, normalize="none")
    dm.setup("fit")
    return dm


def test_datamodule_hands_out_uint8_batches_only_when_the_batch_path_applies():
    on = _datamodule({"crop": 8, "random_resized_crop": True, "scale": [0.7, 1]}, True)
    x, y = next(iter(on.train_dataloader()))
    assert isinstance(on.batch_transform, BatchTransform)
    assert x.dtype == torch.uint8 and x.shape == (6, 1, 8, 8) and len(y) == 6
    for spec, flag in [({"crop": 8, "affine": {"degrees": 10}}, True), ({"crop": 8}, False)]:
        off = _datamodule(spec, flag)
        assert off.batch_transform is None
        assert next(iter(off.train_dataloader()))[0].dtype == torch.float32


# a small run on the emoji with random crops and brightness / contrast jitter on whole batches
EMOJI = (
    "debug=tiny",
    "dataset=emoji",
    "dataset.num_classes=24",
    "dataset.image_size=16",
    "dataset.metrics.nmi=false",
    "trainer.max_epochs=2",
    "trainer.limit_train_batches=3",
)


def test_resumed_run_augments_its_batches_as_the_uninterrupted_one(tmp_path):
    keep = (
        "{_target_:pytorch_lightning.callbacks.ModelCheckpoint,dirpath:"
        + str(tmp_path / "ref" / "steps")
        + ",filename:'s{step}',auto_insert_metric_name:false,save_top_k:-1,every_n_train_steps:1}"
    )
    reference = compose_train(tmp_path / "ref", [*EMOJI, f"+callbacks.keep_all={keep}"])
    assert reference.dataset.batch_transforms and reference.dataset.transform.train.brightness
    result, batches = _recorded_train(reference)
    assert len(batches) == 6 and len({b[2] for b in batches}) == 6
    start = tmp_path / "ref" / "steps" / "s1.ckpt"  # mid-epoch 0
    resumed, seen = _recorded_train(
        compose_train(tmp_path / "resumed", [*EMOJI, f"ckpt_path={start}"])
    )
    assert seen == batches[1:]  # same labels and the same augmented pixels (checksums)
    ref = read_checkpoint(tmp_path / "ref" / "checkpoints" / "last.ckpt")["state_dict"]
    new = read_checkpoint(tmp_path / "resumed" / "checkpoints" / "last.ckpt")["state_dict"]
    assert all(torch.equal(ref[k], new[k]) for k in ref)
    assert resumed["metrics"] == result["metrics"]
