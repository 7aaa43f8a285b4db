"""dataset=emoji: emoji drawn by several vendors; one class per emoji, one image per vendor.

Rendered from the npm ``@iconify-json`` SVG sets (twemoji, noto, fluent-emoji-flat, openmoji,
noto-v1, emojione) on white by scripts/build_embedded_datasets.py and shipped in the package:
1,632 emoji drawn by at least 4 of the 6 vendors, 8,780 images at 64 px. Coarse label: the
emoji's Unicode subgroup (e.g. "animal-mammal"), or its group ("animals-nature"). Licences and
attribution: dml/data/embedded/ATTRIBUTION.md.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from dml.data.shipped import ShippedImages, load_shipped

COARSE_LEVELS = ("subgroup", "group")


class Emoji(ShippedImages):
    """A class-disjoint split of the shipped emoji; `.vendors[i]` is item i's vendor (`.vendor_names`).

    seed / train_fraction / num_classes pick the split's emoji (dml.data.shipped.split_classes);
    vendors (names, None: all) and min_vendors choose which drawings count: an emoji is a class when
    at least min_vendors of the chosen vendors draw it. label picks `.labels`: fine (the emoji) or
    coarse (its Unicode `coarse` level: subgroup or group).
    """

    file = "emoji.npz"
    dataset = "emoji"

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
        coarse: str = "subgroup",
        vendors: Sequence[str] | None = None,
        min_vendors: int = 4,
    ) -> None:
        data = load_shipped(self.file)
        if coarse not in COARSE_LEVELS:
            raise ValueError(
                f"dataset.coarse={coarse!r} is not an emoji label level; use dataset.coarse=subgroup "
                "(e.g. animal-mammal, 96 of them) or dataset.coarse=group (e.g. animals-nature, 9)"
            )
        names = [str(v) for v in data["vendor_names"]]
        chosen = names if vendors is None else [str(v) for v in vendors]
        unknown = sorted(set(chosen) - set(names))
        if unknown or not chosen:
            raise ValueError(
                f"dataset.vendors={list(chosen)!r}: unknown or empty ({unknown}); choose from {names}, or null for all"
            )
        if (
            isinstance(min_vendors, bool)
            or int(min_vendors) != min_vendors
            or not 2 <= min_vendors <= len(chosen)
        ):
            raise ValueError(
                f"dataset.min_vendors={min_vendors!r}: an emoji needs drawings by at least 2 vendors to have a "
                f"positive to retrieve; choose an integer from 2 to {len(chosen)} (the vendors chosen)"
            )
        label_of, vendor_of = data["label"].astype(np.int64), data["vendor"].astype(np.int64)
        use = np.isin(vendor_of, [names.index(v) for v in chosen])
        drawn = np.bincount(label_of[use], minlength=len(data["class_names"]))
        level = data["class_subgroup"] if coarse == "subgroup" else data["class_group"]
        super().__init__(
            split,
            transform,
            image_size,
            seed,
            train_fraction,
            num_classes,
            label,
            fine=label_of,
            coarse=level.astype(np.int64)[label_of],
            candidates=np.flatnonzero(drawn >= min_vendors),
            class_names=data["class_names"],
            coarse_names=data["subgroup_names"] if coarse == "subgroup" else data["group_names"],
            usable=use,
        )
        self.vendors = vendor_of[self.indices]
        self.vendor_names = np.asarray(names)
        self.class_codes = data["class_codes"]
