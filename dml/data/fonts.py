"""dataset=fonts: the glyphs A-Z, a-z, 0-9 of 463 decorative fonts (Debian fonts-aenigma, Brian Kent).

Drawn with FreeType by scripts/build_embedded_datasets.py and shipped in the package: 28,706 grey
images at 64 px, every font's glyphs at one scale on one baseline (a lower-case o stays smaller
than an O). classes=font: 463 classes of 62 glyphs (the shape of CUB-200), coarse label the
character; classes=char: 62 classes of 463 glyphs, coarse label the font (a much harder task:
one character across very different fonts). Licence: dml/data/embedded/ATTRIBUTION.md.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from dml.data.shipped import ShippedImages, load_shipped

CLASS_KINDS = ("font", "char")


class Fonts(ShippedImages):
    """A class-disjoint split of the shipped glyphs; `.fonts[i]` / `.chars[i]` name item i's font and
    character (`.font_names`, `.char_names`).

    classes picks what a class is (font or char; the other is the coarse label); seed /
    train_fraction / num_classes pick the split's classes (dml.data.shipped.split_classes); label
    picks `.labels`: fine (the classes) or coarse.
    """

    file = "fonts.npz"
    dataset = "fonts"

    def __init__(
        self,
        root: str | None = None,
        split: str = "train",
        transform: Callable | None = None,
        image_size: int = 64,
        seed: int = 0,
        train_fraction: float = 0.5,
        num_classes: int | None = None,
        label: str = "fine",
        classes: str = "font",
    ) -> None:
        if classes not in CLASS_KINDS:
            raise ValueError(
                f"dataset.classes={classes!r}: use dataset.classes=font (463 classes, coarse label the character) "
                "or dataset.classes=char (62 classes, coarse label the font)"
            )
        data = load_shipped(self.file)
        font, char = data["font"].astype(np.int64), data["char"].astype(np.int64)
        names = (data["font_names"], data["char_names"])
        fine_names, coarse_names = names if classes == "font" else names[::-1]
        super().__init__(
            split,
            transform,
            image_size,
            seed,
            train_fraction,
            num_classes,
            label,
            fine=font if classes == "font" else char,
            coarse=char if classes == "font" else font,
            candidates=np.arange(len(fine_names)),
            class_names=fine_names,
            coarse_names=coarse_names,
        )
        self.classes_kind = classes
        self.fonts, self.chars = font[self.indices], char[self.indices]
        self.font_names, self.char_names = data["font_names"], data["char_names"]
