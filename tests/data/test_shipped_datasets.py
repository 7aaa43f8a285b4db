"""dataset=emoji and dataset=fonts: the shipped files, counts, class-disjoint seeded splits, coarse
labels, the label-level switch and the errors that name the fix."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dml.config import ConfigError
from dml.data import Emoji, Fonts
from dml.data.shipped import EMBEDDED_DIR, check_split_sizes, load_shipped, split_classes
from dml.training.run import train

EMOJI_CLASSES, EMOJI_IMAGES = 1632, 8780
FONTS, GLYPHS = 463, 62


def test_shipped_files_match_their_recorded_checksums():
    sums = dict(
        reversed(line.split()) for line in (EMBEDDED_DIR / "SHA256SUMS").read_text().splitlines()
    )
    assert set(sums) == {"emoji.npz", "fonts.npz"}
    for name, digest in sums.items():
        assert hashlib.sha256((EMBEDDED_DIR / name).read_bytes()).hexdigest() == digest
    for text in ("ATTRIBUTION.md", "LICENSE-Apache-2.0.txt", "fonts-aenigma-copyright.txt"):
        assert (EMBEDDED_DIR / text).stat().st_size > 1000


def test_a_damaged_or_missing_file_names_the_fix(tmp_path):
    shutil.copy(EMBEDDED_DIR / "SHA256SUMS", tmp_path / "SHA256SUMS")
    with pytest.raises(FileNotFoundError, match="reinstall dml"):
        load_shipped("fonts.npz", tmp_path)
    data = bytearray((EMBEDDED_DIR / "fonts.npz").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / "fonts.npz").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="damaged.*reinstall dml"):
        load_shipped("fonts.npz", tmp_path)


def test_emoji_counts_vendors_and_items():
    train_set, test_set = Emoji(split="train"), Emoji(split="test")
    assert len(train_set) + len(test_set) == EMOJI_IMAGES
    assert len(np.unique(train_set.labels)) + len(np.unique(test_set.labels)) == EMOJI_CLASSES
    assert list(train_set.vendor_names) == [
        "twemoji",
        "noto",
        "fluent-emoji-flat",
        "openmoji",
        "noto-v1",
        "emojione",
    ]
    for ds in (train_set, test_set):
        per_class = np.bincount(ds.labels)[np.unique(ds.labels)]
        assert per_class.min() >= 4 and per_class.max() <= 6
        # one image per vendor and class
        pairs = ds.labels * 10 + ds.vendors
        assert len(np.unique(pairs)) == len(ds)
    image, label = train_set[0]
    assert isinstance(image, Image.Image) and image.size == (64, 64) and image.mode == "RGB"
    assert label == train_set.labels[0]
    # rendered on white: the corners are white; a smaller size is scaled from the stored 64 px
    assert (train_set.images[:, 0, 0] == 255).all(axis=-1).mean() > 0.95
    small = Emoji(split="train", image_size=32)
    assert small.images.shape[1:] == (32, 32, 3) and np.array_equal(small.labels, train_set.labels)


def test_fonts_counts_and_items():
    train_set, test_set = Fonts(split="train"), Fonts(split="test")
    assert len(train_set) + len(test_set) == FONTS * GLYPHS
    assert len(np.unique(train_set.labels)) + len(np.unique(test_set.labels)) == FONTS
    assert (np.bincount(train_set.labels)[np.unique(train_set.labels)] == GLYPHS).all()
    assert (
        "".join(train_set.char_names)
        == "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    )
    image, _ = train_set[0]
    assert image.size == (64, 64) and image.mode == "RGB"
    assert train_set.images.ndim == 3 and set(np.unique(train_set.images) % 17) == {
        0
    }  # 16 grey levels


@pytest.mark.parametrize(
    "make",
    [Emoji, Fonts, lambda **kw: Fonts(classes="char", **kw)],
    ids=["emoji", "fonts", "chars"],
)
def test_splits_are_class_disjoint_cover_every_class_and_follow_the_seed(make):
    a_train, a_test = make(split="train", seed=0), make(split="test", seed=0)
    train_classes, test_classes = (
        set(a_train.fine_labels.tolist()),
        set(a_test.fine_labels.tolist()),
    )
    assert not train_classes & test_classes
    assert len(train_classes | test_classes) == len(a_train.class_names)
    assert abs(len(train_classes) - len(test_classes)) <= 1
    again = make(split="train", seed=0)
    assert np.array_equal(again.labels, a_train.labels) and np.array_equal(
        again.images, a_train.images
    )
    other = make(split="train", seed=1)
    assert set(other.fine_labels.tolist()) != train_classes


def test_split_classes_num_classes_and_fraction():
    classes = np.arange(100)
    train_part = split_classes(classes, "train", 3, 0.5, 40)
    test_part = split_classes(classes, "test", 3, 0.5, 40)
    assert len(train_part) == 20 and len(test_part) == 20 and not set(train_part) & set(test_part)
    assert len(split_classes(classes, "train", 3, 0.25, None)) == 25


def test_a_split_class_with_one_image_names_the_options():
    check_split_sizes(np.array([0, 0, 1, 1]), "test", "emoji", "fine")
    with pytest.raises(
        ValueError, match="1 fine class.*single image.*dataset.seed / dataset.num_classes"
    ):
        check_split_sizes(np.array([0, 0, 1]), "test", "emoji", "fine")


def test_emoji_coarse_labels_are_the_subgroups_of_the_classes():
    ds = Emoji(split="test")
    data = load_shipped("emoji.npz")
    assert np.array_equal(ds.coarse_labels, data["class_subgroup"][ds.fine_labels])
    # each emoji has one subgroup; subgroups hold several emoji
    for c in np.unique(ds.fine_labels)[:50]:
        assert len(np.unique(ds.coarse_labels[ds.fine_labels == c])) == 1
    names = {
        ds.class_names[f]: ds.coarse_names[c]
        for f, c in zip(ds.fine_labels, ds.coarse_labels, strict=True)
    }
    known = {"dog face": "animal-mammal", "grinning face": "face-smiling", "red heart": "heart"}
    assert all(names[k] == v for k, v in known.items() if k in names)
    grouped = Emoji(split="test", coarse="group")
    assert (
        set(grouped.coarse_names) >= {"animals-nature", "smileys-emotion"}
        and len(grouped.coarse_names) <= 9
    )


def test_the_label_level_chooses_the_labels():
    fine, coarse = Emoji(split="train"), Emoji(split="train", label="coarse")
    assert np.array_equal(fine.labels, fine.fine_labels) and np.array_equal(
        coarse.labels, coarse.coarse_labels
    )
    assert np.array_equal(fine.fine_labels, coarse.fine_labels)
    assert len(np.unique(coarse.labels)) < len(np.unique(fine.labels))
    assert coarse[0][1] == coarse.coarse_labels[0]
    by_font = Fonts(split="test", label="coarse")  # classes=font: coarse is the character
    assert np.array_equal(by_font.labels, by_font.chars) and np.array_equal(
        by_font.fine_labels, by_font.fonts
    )
    by_char = Fonts(split="test", classes="char")  # the reverse task
    assert np.array_equal(by_char.labels, by_char.chars) and np.array_equal(
        by_char.coarse_labels, by_char.fonts
    )
    assert len(np.unique(by_char.labels)) == 31 and len(by_char) == 31 * FONTS


def test_vendor_choice_and_min_vendors():
    three = Emoji(split="test", vendors=["twemoji", "noto", "fluent-emoji-flat"], min_vendors=3)
    assert set(three.vendors.tolist()) == {0, 1, 2}
    assert (np.bincount(three.labels)[np.unique(three.labels)] == 3).all()
    six = Emoji(split="test", min_vendors=6)
    assert (np.bincount(six.labels)[np.unique(six.labels)] == 6).all()


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (
            {"label": "medium"},
            "dataset.label='medium' is not a label level; use dataset.label=fine",
        ),
        ({"coarse": "kind"}, "dataset.coarse='kind'.*dataset.coarse=subgroup"),
        ({"vendors": ["apple"]}, r"dataset.vendors=\['apple'\].*choose from"),
        ({"min_vendors": 1}, "dataset.min_vendors=1.*from 2 to 6"),
        ({"vendors": ["twemoji", "noto"], "min_vendors": 3}, "dataset.min_vendors=3.*from 2 to 2"),
        ({"num_classes": 3}, "dataset.num_classes=3: choose an integer from 4"),
        ({"num_classes": 4, "train_fraction": 0.9}, "the test split has 0 fine class"),
        ({"train_fraction": 1.0}, "dataset.train_fraction=1.0 must be strictly between 0 and 1"),
        ({"image_size": 96}, "dataset.image_size=96.*stored at 64 px.*from 8 to 64"),
    ],
)
def test_emoji_errors_name_the_fix(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Emoji(split="test", **kwargs)


def test_fonts_errors_name_the_fix():
    with pytest.raises(ValueError, match="dataset.classes='glyph'.*dataset.classes=font"):
        Fonts(classes="glyph")
    with pytest.raises(ValueError, match="dataset.label='both'"):
        Fonts(label="both")
    with pytest.raises(ValueError, match="dataset.image_size=96.*from 8 to 64"):
        Fonts(image_size=96)
    with pytest.raises(ValueError, match="the train split has 1 fine class"):
        Fonts(split="train", num_classes=4, train_fraction=0.2)


def test_a_bad_dataset_option_stops_dml_train_cleanly(compose_cfg, tiny_run):
    cfg = compose_cfg(*tiny_run, "dataset=emoji", "dataset.label=medium")
    out = Path(cfg.paths.output_dir)
    (out / ".hydra").mkdir(parents=True)
    with pytest.raises(ConfigError, match="dataset.label='medium'"):
        train(cfg)
    assert not out.exists()


def test_indices_place_a_split_in_the_shipped_file():
    emoji, chars = Emoji(split="test", min_vendors=5), Fonts(split="train", classes="char")
    for data in (emoji, chars):
        stored = load_shipped(data.file)
        assert np.array_equal(data.images, stored["images"][data.indices])
    stored = load_shipped("emoji.npz")
    assert np.array_equal(emoji.fine_labels, stored["label"][emoji.indices])
    assert np.array_equal(emoji.vendors, stored["vendor"][emoji.indices])
    assert np.array_equal(chars.fine_labels, load_shipped("fonts.npz")["char"][chars.indices])
