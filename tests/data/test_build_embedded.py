"""The pure parts of scripts/build_embedded_datasets.py: codepoint naming, skin-tone dropping,
name matching, the class rule, SVG assembly, grey levels and byte-stable files."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import re
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "build_embedded_datasets.py"


@pytest.fixture(scope="module")
def build():
    spec = importlib.util.spec_from_file_location("build_embedded_datasets", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def test_sequences_drop_fe0f_and_agree_across_spellings(build):
    assert build.normalize_sequence("2764-fe0f") == "2764"
    assert build.normalize_sequence("1F636-200D-1F32B-FE0F") == "1F636-200D-1F32B"
    assert build.normalize_sequence("1f44b") == build.normalize_sequence("1F44B")


def test_skin_tone_sequences_are_dropped(build):
    assert build.has_skin_tone("1F44B-1F3FB") and build.has_skin_tone("1F9D1-1F3FF-200D-1F4BB")
    assert not build.has_skin_tone("1F44B") and not build.has_skin_tone("1F3F3-200D-1F308")
    chars = {
        "1f44b": "waving-hand",
        "1f44b-1f3fb": "waving-hand-light",
        "2764-fe0f": "red-heart",
        "2764": "heart-text",
    }
    # the skin-tone variant is gone; the two spellings of 2764 keep one icon (first in sorted order)
    assert build.vendor_sequences(chars) == {"1F44B": "waving-hand", "2764": "heart-text"}


def test_name_matching_skips_names_that_mean_two_emoji(build):
    a = {"1F436": "dog-face", "1F3F3": "white-flag"}
    b = {
        "1F436": "dog-face",
        "1F3F3-FE0F": "x",
        "2690": "white-flag",
    }  # white-flag names another codepoint here
    by_name = build.names_to_sequences([a, b])
    assert by_name == {"dog-face": "1F436", "x": "1F3F3-FE0F"}
    assert build.sequences_by_name(["white-flag", "dog-face", "unknown"], by_name) == {
        "1F436": "dog-face"
    }


def _groups():
    return {
        "groups": {"0": "smileys-emotion", "1": "component", "2": "animals-nature"},
        "subgroups": {"0": "face-smiling", "1": "hair-style", "2": "animal-mammal"},
    }


def test_class_rule_counts_vendors_and_drops_components_and_letters(build):
    emojibase = [
        {"hexcode": "1F436", "label": "dog face", "group": 2, "subgroup": 2, "order": 5},
        {"hexcode": "1F600", "label": "grinning face", "group": 0, "subgroup": 0, "order": 1},
        {"hexcode": "1F9B0", "label": "red hair", "group": 1, "subgroup": 1, "order": 9},
        {"hexcode": "1F1E6", "label": "regional indicator A"},  # no group: not an emoji of its own
        {"hexcode": "1F431", "label": "cat face", "group": 2, "subgroup": 2, "order": 6},
    ]
    v1 = {"1F436": "dog", "1F600": "grin", "1F9B0": "hair", "1F1E6": "a", "1F431": "cat"}
    v2 = {"1F436": "dog2", "1F600": "grin2", "1F9B0": "hair2", "1F1E6": "a2"}
    v3 = {"1F600": "grin3"}
    classes = build.select_emoji_classes([v1, v2, v3], emojibase, _groups(), min_vendors=2)
    assert [c.label for c in classes] == [
        "grinning face",
        "dog face",
    ]  # Unicode order; the cat has one vendor
    assert classes[0].icons == ("grin", "grin2", "grin3") and classes[1].icons == (
        "dog",
        "dog2",
        None,
    )
    assert (classes[1].group, classes[1].subgroup) == ("animals-nature", "animal-mammal")
    three = build.select_emoji_classes([v1, v2, v3], emojibase, _groups(), min_vendors=3)
    assert [c.sequence for c in three] == ["1F600"]


def test_icon_svg_follows_aliases_and_applies_flips(build):
    icon_set = {
        "width": 32,
        "height": 32,
        "icons": {"walk": {"body": '<path d="M0 0h8v8z"/>'}, "wide": {"body": "<g/>", "width": 40}},
        "aliases": {
            "walk-right": {"parent": "walk", "hFlip": True},
            "again": {"parent": "walk-right"},
        },
    }
    plain = build.icon_svg(icon_set, "walk", 96)
    assert 'width="96" height="96" viewBox="0 0 32 32"' in plain and "transform" not in plain
    flipped = build.icon_svg(icon_set, "again", 96)
    assert re.search(r'<g transform="translate\(32 0\) scale\(-1 1\)"><path', flipped)
    assert 'viewBox="0 0 40 32"' in build.icon_svg(icon_set, "wide", 96)
    with pytest.raises(KeyError):
        build.icon_svg(icon_set, "missing", 96)


def test_font_names_and_grey_levels(build):
    assert build.font_class_name("/x/usr/share/fonts/truetype/aenigma/18Holes.ttf") == "18holes"
    grey = np.array([0, 8, 9, 16, 17, 128, 247, 255], dtype=np.uint8)
    levels = build.to_levels(grey, 16)
    assert levels.tolist() == [0, 0, 1, 1, 1, 8, 15, 15]
    assert np.abs(levels.astype(int) * 17 - grey).max() <= 8  # within half a level of the original


def test_npz_files_are_byte_stable_and_readable(build, tmp_path):
    arrays = {"b": np.arange(6, dtype=np.int16), "a": np.asarray(["x", "yz"])}
    build.write_npz(tmp_path / "one.npz", arrays)
    build.write_npz(tmp_path / "two.npz", dict(reversed(list(arrays.items()))))
    one, two = (tmp_path / "one.npz").read_bytes(), (tmp_path / "two.npz").read_bytes()
    assert hashlib.sha256(one).digest() == hashlib.sha256(two).digest()
    with np.load(io.BytesIO(one), allow_pickle=False) as npz:
        assert npz["b"].tolist() == list(range(6)) and npz["a"].tolist() == ["x", "yz"]
    packed = build.encode_images(np.full((3, 4, 4), 7, dtype=np.uint8))
    assert packed.dtype == np.uint8 and bytes(packed[:6]) == b"\xfd7zXZ\x00"  # an xz stream


def test_sums_file_round_trip(build, tmp_path):
    (tmp_path / "SHA256SUMS").write_text("ab12  emoji.npz\ncd34 *fonts.npz\n")
    assert build.read_sums(tmp_path / "SHA256SUMS") == {"emoji.npz": "ab12", "fonts.npz": "cd34"}
