"""build_transform: output shape/channels for every PIL mode, normalisations, spec errors."""

import numpy as np
import pytest
import torch
from PIL import Image

from dml.data.transforms import IMAGENET_MEAN, build_transform


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "P", "LA", "I;16", "CMYK"])
def test_any_mode_gives_three_channels(mode):
    image = Image.new("RGB", (40, 30), (10, 120, 250)).convert(mode)
    out = build_transform({"resize": 24, "crop": 16})(image)
    assert out.shape == (3, 16, 16) and out.dtype == torch.float32


def test_train_random_resized_crop_and_flip():
    t = build_transform(
        {"crop": 20, "random_resized_crop": True, "scale": [0.5, 1.0], "flip": True}
    )
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (50, 70, 3), dtype=np.uint8))
    outs = [t(image) for _ in range(4)]
    assert all(o.shape == (3, 20, 20) for o in outs)
    assert any(not torch.equal(outs[0], o) for o in outs[1:])  # random
    assert t.decode_size == 20


def test_eval_resize_center_crop_is_deterministic_and_decode_size():
    t = build_transform({"resize": 32, "crop": 28})
    image = Image.new("RGB", (64, 48), (0, 0, 0))
    assert torch.equal(t(image), t(image))
    assert t.decode_size == 32


def test_imagenet_normalisation_values():
    image = Image.new("RGB", (8, 8), (255, 0, 0))
    out = build_transform({}, normalize="imagenet")(image)
    assert out[0, 0, 0].item() == pytest.approx((1 - IMAGENET_MEAN[0]) / 0.229, rel=1e-5)
    assert out[1, 0, 0].item() == pytest.approx((0 - IMAGENET_MEAN[1]) / 0.224, rel=1e-5)


def test_bgr255_is_bgr_order_0_255_minus_mean():
    image = Image.new("RGB", (8, 8), (200, 100, 50))
    out = build_transform({"crop": 8}, normalize="bgr255")(image)
    assert out[:, 0, 0].tolist() == pytest.approx([50 - 104.0, 100 - 117.0, 200 - 128.0], abs=1e-3)


def test_none_keeps_unit_range():
    out = build_transform({}, normalize="none")(Image.new("L", (4, 4), 255))
    assert out.shape == (3, 4, 4) and torch.allclose(out, torch.ones_like(out))


def test_rgba_transparent_becomes_white():
    image = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    out = build_transform({}, normalize="none")(image)
    assert torch.allclose(out, torch.ones_like(out))


def test_affine_warps_randomly_and_keeps_the_size():
    t = build_transform(
        {
            "resize": 16,
            "crop": 16,
            "affine": {"degrees": 15, "translate": [0.1, 0.1], "scale": [0.85, 1.15], "shear": 10},
        },
        normalize="none",
    )
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (16, 16), dtype=np.uint8))
    plain = build_transform({"resize": 16, "crop": 16}, normalize="none")(image)
    outs = [t(image) for _ in range(4)]
    assert all(o.shape == (3, 16, 16) for o in outs)
    assert all(not torch.equal(o, plain) for o in outs)
    assert "RandomAffine" in repr(t)


def test_transform_is_picklable():
    import pickle

    t = build_transform({"resize": 10, "crop": 8, "flip": True}, normalize="bgr255")
    t2 = pickle.loads(pickle.dumps(t))
    assert t2(Image.new("RGB", (12, 12))).shape == (3, 8, 8)


@pytest.mark.parametrize(
    "spec,norm,match",
    [
        ({"rezise": 3}, "imagenet", "unknown transform key"),
        ({}, "caffe", "normalize must be one of"),
        ({"random_resized_crop": True}, "imagenet", "needs transform.crop"),
        ({"crop": 8, "random_resized_crop": True, "scale": [0.9]}, "imagenet", "scale"),
        ({"resize": -1}, "imagenet", "resize"),
        ({"affine": {"degree": 10}}, "none", "transform.affine must be a mapping"),
        ({"affine": {"degrees": -5}}, "none", "degrees and shear must be >= 0"),
        ({"affine": {"translate": [0.1, 2.0]}}, "none", "translate must be fractions"),
        ({"affine": {"scale": [1.2, 0.8]}}, "none", "affine.scale"),
    ],
)
def test_bad_specs_raise(spec, norm, match):
    with pytest.raises(ValueError, match=match):
        build_transform(spec, normalize=norm)
