"""open_image (draft mode, boxes, errors) and the resized disk cache."""

import numpy as np
import pytest
from PIL import Image

from dml.data.decode import BadImageError, ResizedCache, open_image, shrink


@pytest.fixture
def jpeg(tmp_path):
    path = tmp_path / "big.jpg"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)).save(path, quality=90)
    return path


def test_draft_decodes_at_reduced_scale_only_when_much_smaller(jpeg):
    assert open_image(jpeg).size == (400, 300)
    assert open_image(jpeg, decode_size=100).size == (200, 150)  # 1/2 keeps >= 100 px
    assert open_image(jpeg, decode_size=30).size == (50, 38)  # 1/8
    assert open_image(jpeg, decode_size=200).size == (400, 300)  # less than 2x: full decode


def test_draft_with_box_keeps_box_resolution(jpeg):
    box = (100.0, 50.0, 300.0, 250.0)  # 200 x 200 region
    full = open_image(jpeg, None, box)
    assert full.size == (200, 200)
    reduced = open_image(jpeg, 50, box)
    # decoded at 1/4, box scaled with it (rounded outward to whole pixels)
    assert reduced.size[0] in (50, 51) and reduced.size[1] in (50, 51)
    assert open_image(jpeg, 150, box).size == (200, 200)


def test_draft_ignores_png(tmp_path):
    path = tmp_path / "a.png"
    Image.new("RGB", (400, 300)).save(path)
    assert open_image(path, decode_size=50).size == (400, 300)


def test_errors_name_the_file(tmp_path):
    with pytest.raises(BadImageError, match="not found"):
        open_image(tmp_path / "nope.jpg")
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff garbage")
    with pytest.raises(BadImageError, match="bad.jpg"):
        open_image(bad)


def test_shrink_never_enlarges():
    assert shrink(Image.new("RGB", (400, 300)), 150).size == (200, 150)
    assert shrink(Image.new("RGB", (40, 30)), 150).size == (40, 30)


def test_cache_writes_once_and_reads_back(jpeg, tmp_path):
    cache = ResizedCache(tmp_path / "cache", 100)
    first = cache.load(jpeg, "sub/big.jpg")
    stored = tmp_path / "cache" / "100" / "sub" / "big.jpg"
    assert stored.is_file() and first.size == (133, 100)
    jpeg.unlink()  # from now on only the cache can serve it
    again = cache.load(jpeg, "sub/big.jpg")
    assert again.size == (133, 100)
    assert not list(stored.parent.glob("*.tmp"))


def test_cache_rebuilds_damaged_entry_and_keys_boxes_apart(jpeg, tmp_path):
    cache = ResizedCache(tmp_path / "c", 64, cropped=True)
    stored = cache.path_for("big.jpg")
    assert stored.parent.name == "64-bbox"
    stored.parent.mkdir(parents=True)
    stored.write_bytes(b"junk")
    assert cache.load(jpeg, "big.jpg", (0.0, 0.0, 128.0, 128.0)).size == (64, 64)


def test_cache_keys_stay_inside(tmp_path):
    cache = ResizedCache(tmp_path, 32)
    assert cache.path_for("/abs/x.png").is_relative_to(cache.dir)
    assert cache.path_for("../up/x.png").is_relative_to(cache.dir)
    assert cache.path_for("a/x.png").name == "x.png.jpg"
