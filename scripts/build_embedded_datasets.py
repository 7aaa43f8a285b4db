#!/usr/bin/env python3
"""Rebuild dml's embedded image datasets (dataset=emoji, dataset=fonts) byte for byte from pinned packages.

    python scripts/build_embedded_datasets.py [--work /tmp/dml-embedded-build] [--out dml/data/embedded]
    python scripts/build_embedded_datasets.py --check   # rebuild into --work and compare with SHA256SUMS

Sources (fetched with the ordinary clients, pinned below; dml itself never downloads them):

- emoji: SVG emoji sets of the npm ``@iconify-json/*`` packages (one vendor each), the emoji's
  Unicode group and subgroup from npm ``emojibase-data``; rendered on white with PyPI ``resvg-py``
  (the resvg renderer, pure Rust: no system fonts, no platform graphics library).
- fonts: the 463 TrueType fonts of Debian ``fonts-aenigma`` that map all of A-Z, a-z and 0-9,
  each glyph drawn with Pillow's FreeType rasteriser (Pillow and FreeType versions checked).

One class of ``emoji`` is one emoji (skin-tone variants and the "component" group dropped) drawn by
at least MIN_VENDORS of the vendors; one image per vendor that draws it. Vendors without a
chars.json (codepoint -> icon) are matched by icon name to the names the others use for a codepoint.

Writes ``emoji.npz``, ``fonts.npz`` and ``SHA256SUMS`` into --out (see dml/data/shipped.py
for the layout). Needs npm, apt-get (an index with the pinned fonts-aenigma, Debian 12) and
dpkg-deb on the path; not part of the test suite (the pure parts are:
tests/data/test_build_embedded.py). Byte identity was checked on x86_64 Linux (resvg-py's
manylinux wheel, liblzma of the running Python); another platform's renderer or xz encoder may
differ in the last bits.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import string
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# ---- pins -------------------------------------------------------------------------------------
# (npm name, version, licence as the package's "license" field says)
EMOJI_VENDORS: tuple[tuple[str, str, str], ...] = (
    ("twemoji", "1.2.5", "CC-BY-4.0"),
    ("noto", "1.2.9", "Apache-2.0"),
    ("fluent-emoji-flat", "1.2.6", "MIT"),
    ("openmoji", "1.2.29", "CC-BY-SA-4.0"),
    ("noto-v1", "1.2.5", "Apache-2.0"),
    ("emojione", "1.2.3", "CC-BY-4.0"),
)
NPM_PINS: tuple[tuple[str, str], ...] = (
    *((f"@iconify-json/{name}", version) for name, version, _ in EMOJI_VENDORS),
    ("emojibase-data", "17.0.0"),
)
RESVG_PIN = ("resvg-py", "0.5.0")  # PyPI; its wheel embeds resvg 0.48.1
DEB_PIN = ("fonts-aenigma", "0.0.20080511+dfsg-4")
DEB_SHA256 = "c7f33a4e5932af82a92c81a5a993a1d117c4309b47532cb0d9c3ad34bc54f5a8"
PILLOW_PIN = "13.0.0"
FREETYPE_PIN = "2.14.3"

# an emoji is a class when at least this many vendors draw it. Classes (images) by the rule:
# >= 2: 1,914 (9,366; 260 country flags drawn by 2 vendors only), >= 3: 1,654 (8,846),
# >= 4: 1,632 (8,780), >= 5: 1,199 (7,048), all 6: 1,053 (6,318). 4 keeps nearly every emoji
# with at least 4 images per class (R >= 3 for MAP@R) and leaves out the 2-vendor flags.
MIN_VENDORS = 4
SKIN_TONES = frozenset({"1F3FB", "1F3FC", "1F3FD", "1F3FE", "1F3FF"})
DROPPED_GROUPS = frozenset({"component"})  # skin-tone swatches and hair-style pieces
GLYPHS = string.ascii_uppercase + string.ascii_lowercase + string.digits
# 64 px: the size the fine-tuning runs use (110 img/s vs 45 at 96 px on 2 cores). At 96 px emoji.npz
# measured 10.76 MB instead of 7.37 MB, and scaling it to 64 px at every load (one Pillow resize per
# image) took longer than decoding it
EMOJI_SIZE = 64
# grey levels kept per glyph pixel: 16 (4 bits) make fonts.npz 3.97 MB where 256 levels measured
# about 12.9 MB; anti-aliased edges keep their shape
FONT_LEVELS = 16
FONT_SIZE = 64
GLYPH_RENDER_PT = 192  # glyphs are drawn this big, then scaled down per font
FONT_MARGIN = 2  # px of white around a font's tallest glyph box


# ---- pure parts (tested) ----------------------------------------------------------------------
def normalize_sequence(hexcode: str) -> str:
    """Upper-case dash-joined codepoints without the emoji presentation selector FE0F.

    chars.json keys and emojibase hexcodes disagree on FE0F ("2764-fe0f" vs "2764"); without it
    they name the same emoji.
    """
    return "-".join(
        p for p in hexcode.strip().upper().replace("_", "-").split("-") if p and p != "FE0F"
    )


def has_skin_tone(sequence: str) -> bool:
    """True when a normalized sequence carries a Fitzpatrick skin-tone modifier (1F3FB-1F3FF)."""
    return any(p in SKIN_TONES for p in sequence.split("-"))


def vendor_sequences(chars: Mapping[str, str]) -> dict[str, str]:
    """{normalized sequence: icon name} of a chars.json, skin-tone sequences dropped; the first
    icon (in sorted codepoint order) wins when two codepoint spellings name one sequence."""
    out: dict[str, str] = {}
    for hexcode in sorted(chars):
        seq = normalize_sequence(hexcode)
        if not has_skin_tone(seq):
            out.setdefault(seq, chars[hexcode])
    return out


def names_to_sequences(charmaps: Iterable[Mapping[str, str]]) -> dict[str, str]:
    """{icon name: sequence} from the vendors that have a chars.json; a name that stands for two
    different sequences anywhere is left out (it cannot be matched by name)."""
    seen: dict[str, set[str]] = {}
    for seqs in charmaps:
        for seq, name in seqs.items():
            seen.setdefault(name, set()).add(seq)
    return {name: next(iter(s)) for name, s in sorted(seen.items()) if len(s) == 1}


def sequences_by_name(icon_names: Iterable[str], by_name: Mapping[str, str]) -> dict[str, str]:
    """{sequence: icon name} of a vendor without a chars.json: its icons whose name the others use
    for exactly one sequence (first name in sorted order wins)."""
    out: dict[str, str] = {}
    for name in sorted(icon_names):
        seq = by_name.get(name)
        if seq is not None and not has_skin_tone(seq):
            out.setdefault(seq, name)
    return out


@dataclass(frozen=True)
class EmojiClass:
    sequence: str  # normalized hexcode, e.g. "1F436"
    label: str  # CLDR name, e.g. "dog face"
    group: str  # e.g. "animals-nature"
    subgroup: str  # e.g. "animal-mammal"
    order: int  # emojibase's Unicode order
    icons: tuple[str | None, ...]  # icon name per vendor (None: not drawn)


def select_emoji_classes(
    vendors: list[dict[str, str]], emojibase: list[dict], groups: Mapping, min_vendors: int
) -> list[EmojiClass]:
    """Emoji drawn by >= min_vendors vendors that emojibase places in a group (not a dropped one),
    in Unicode order. `vendors` are {sequence: icon} maps; `groups` is emojibase meta/groups.json."""
    group_names, subgroup_names = groups["groups"], groups["subgroups"]
    out = []
    for entry in emojibase:
        if "group" not in entry or "subgroup" not in entry:
            continue  # regional indicator letters
        seq = normalize_sequence(entry["hexcode"])
        group = group_names[str(entry["group"])]
        if has_skin_tone(seq) or group in DROPPED_GROUPS:
            continue
        icons = tuple(v.get(seq) for v in vendors)
        if sum(i is not None for i in icons) >= min_vendors:
            out.append(
                EmojiClass(
                    seq,
                    entry["label"],
                    group,
                    subgroup_names[str(entry["subgroup"])],
                    int(entry["order"]),
                    icons,
                )
            )
    out.sort(key=lambda c: c.order)
    return out


def icon_svg(icon_set: Mapping, name: str, size: int) -> str:
    """A standalone SVG (size x size px, on white) of icon `name` of an iconify icon set, aliases
    followed and their horizontal/vertical flips and quarter rotations applied (iconify's rules)."""
    icons, aliases = icon_set["icons"], icon_set.get("aliases", {})
    h_flip, v_flip, rotate = False, False, 0
    seen = set()
    while name not in icons:
        if name in seen or name not in aliases:
            raise KeyError(f"icon {name!r} is not in the set")
        seen.add(name)
        alias = aliases[name]
        h_flip ^= bool(alias.get("hFlip", False))
        v_flip ^= bool(alias.get("vFlip", False))
        rotate += int(alias.get("rotate", 0))
        name = alias["parent"]
    icon = icons[name]
    h_flip ^= bool(icon.get("hFlip", False))
    v_flip ^= bool(icon.get("vFlip", False))
    rotate += int(icon.get("rotate", 0))
    left, top = icon.get("left", icon_set.get("left", 0)), icon.get("top", icon_set.get("top", 0))
    width = icon.get("width", icon_set.get("width", 16))
    height = icon.get("height", icon_set.get("height", 16))
    body = icon["body"]
    transforms = []
    if h_flip:
        transforms.append(f"translate({width + 2 * left} 0) scale(-1 1)")
    if v_flip:
        transforms.append(f"translate(0 {height + 2 * top}) scale(1 -1)")
    rotate %= 4
    if rotate:
        cx, cy = left + width / 2, top + height / 2
        transforms.insert(0, f"rotate({90 * rotate} {cx} {cy})")
    if transforms:
        body = f'<g transform="{" ".join(transforms)}">{body}</g>'
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
        f'width="{size}" height="{size}" viewBox="{left} {top} {width} {height}">{body}</svg>'
    )


def font_class_name(path: str) -> str:
    """A font's class name: its file name without .ttf, lower-cased (the package's file names are unique)."""
    return Path(path).name.rsplit(".", 1)[0].lower()


# ---- fetching ---------------------------------------------------------------------------------
def run(cmd: list[str], cwd: Path | None = None, env: Mapping[str, str] | None = None) -> None:
    print("+", " ".join(cmd), file=sys.stderr)
    subprocess.run(cmd, cwd=cwd, check=True, env=None if env is None else {**os.environ, **env})


def fetch_npm(work: Path) -> Path:
    """npm install the pinned packages into work/npm; returns its node_modules."""
    root = work / "npm"
    root.mkdir(parents=True, exist_ok=True)
    (root / "package.json").write_text('{"private": true}\n')
    run(
        [
            "npm",
            "install",
            "--no-audit",
            "--no-fund",
            "--ignore-scripts",
            "--no-package-lock",
            *(f"{name}@{version}" for name, version in NPM_PINS),
        ],
        cwd=root,
    )
    modules = root / "node_modules"
    for name, version in NPM_PINS:
        got = json.loads((modules / name / "package.json").read_text())["version"]
        if got != version:
            raise SystemExit(f"npm installed {name} {got}, expected {version}")
    return modules


def fetch_deb(work: Path) -> Path:
    """apt-get download the pinned fonts-aenigma .deb and unpack it (no install); returns the tree."""
    root = work / "deb"
    root.mkdir(parents=True, exist_ok=True)
    name, version = DEB_PIN
    debs = list(root.glob(f"{name}_*.deb"))
    if not debs:
        run(["apt-get", "download", f"{name}={version}"], cwd=root)
        debs = list(root.glob(f"{name}_*.deb"))
    digest = hashlib.sha256(debs[0].read_bytes()).hexdigest()
    if digest != DEB_SHA256:
        raise SystemExit(f"{debs[0]} has sha256 {digest}, expected {DEB_SHA256}")
    tree = root / "tree"
    shutil.rmtree(tree, ignore_errors=True)
    run(["dpkg-deb", "-x", str(debs[0]), str(tree)])
    return tree


# ---- rendering --------------------------------------------------------------------------------
def render_svgs(svgs: list[str], size: int) -> np.ndarray:
    """Render SVG strings with resvg (PyPI resvg-py) on white -> uint8 [N, size, size, 3]."""
    import resvg_py
    from PIL import Image

    out = np.empty((len(svgs), size, size, 3), dtype=np.uint8)
    for k, svg in enumerate(svgs):
        png = resvg_py.svg_to_bytes(
            svg_string=svg, background="#ffffff", skip_system_fonts=True, width=size, height=size
        )
        image = Image.open(io.BytesIO(png))
        if image.size != (size, size):
            raise SystemExit(f"resvg drew SVG {k} at {image.size}, expected {size}x{size}")
        out[k] = np.asarray(image.convert("RGB"))
    return out


def build_emoji(modules: Path, size: int = EMOJI_SIZE) -> dict[str, np.ndarray]:
    """The emoji set's arrays (see dml/data/shipped.py for the keys)."""
    sets = [
        json.loads((modules / "@iconify-json" / v / "icons.json").read_text())
        for v, _, _ in EMOJI_VENDORS
    ]
    chars = {}
    for v, _, _ in EMOJI_VENDORS:
        path = modules / "@iconify-json" / v / "chars.json"
        mapping = json.loads(path.read_text()) if path.exists() else {}
        if mapping:  # noto-v1, emojione and others ship an empty chars.json
            chars[v] = vendor_sequences(mapping)
    by_name = names_to_sequences(chars[v] for v in chars)
    maps = []
    for (v, _, _), icon_set in zip(EMOJI_VENDORS, sets, strict=True):
        if v in chars:
            maps.append(chars[v])
        else:
            maps.append(
                sequences_by_name([*icon_set["icons"], *icon_set.get("aliases", {})], by_name)
            )
    emojibase = json.loads((modules / "emojibase-data" / "en" / "data.json").read_text())
    groups = json.loads((modules / "emojibase-data" / "meta" / "groups.json").read_text())
    classes = select_emoji_classes(maps, emojibase, groups, MIN_VENDORS)
    svgs, labels, vendor = [], [], []
    for c, cls in enumerate(classes):
        for v, icon in enumerate(cls.icons):
            if icon is not None:
                svgs.append(icon_svg(sets[v], icon, size))
                labels.append(c)
                vendor.append(v)
    images = render_svgs(svgs, size)
    group_names = sorted({c.group for c in classes}, key=[c.group for c in classes].index)
    subgroup_names = sorted({c.subgroup for c in classes}, key=[c.subgroup for c in classes].index)
    return {
        "images": images,
        "label": np.asarray(labels, dtype=np.int16),
        "vendor": np.asarray(vendor, dtype=np.int8),
        "class_names": np.asarray([c.label for c in classes]),
        "class_codes": np.asarray([c.sequence for c in classes]),
        "class_subgroup": np.asarray(
            [subgroup_names.index(c.subgroup) for c in classes], dtype=np.int16
        ),
        "class_group": np.asarray([group_names.index(c.group) for c in classes], dtype=np.int16),
        "subgroup_names": np.asarray(subgroup_names),
        "group_names": np.asarray(group_names),
        "vendor_names": np.asarray([v for v, _, _ in EMOJI_VENDORS]),
        "vendor_licenses": np.asarray([lic for _, _, lic in EMOJI_VENDORS]),
    }


def _check_pillow() -> None:
    import PIL
    from PIL import features

    got = (PIL.__version__, features.version("freetype2"))
    if got != (PILLOW_PIN, FREETYPE_PIN):
        raise SystemExit(
            f"glyphs are drawn with Pillow {PILLOW_PIN} / FreeType {FREETYPE_PIN} for identical bytes; this "
            f"Python has Pillow {got[0]} / FreeType {got[1]}: pip install pillow=={PILLOW_PIN}"
        )


def font_glyphs(path: Path, size: int = FONT_SIZE) -> np.ndarray | None:
    """The 62 glyphs of one font as uint8 [62, size, size] (black on white), or None when the font
    does not map every character or draws one of them empty.

    All glyphs of a font share one scale and one baseline (a lower-case o stays smaller than an O):
    the scale fits the font's tallest ink span and widest glyph into size - 2 * FONT_MARGIN.
    """
    from fontTools.ttLib import TTFont
    from PIL import Image, ImageDraw, ImageFont

    cmap = TTFont(str(path), lazy=True).getBestCmap() or {}
    if any(ord(ch) not in cmap for ch in GLYPHS):
        return None
    font = ImageFont.truetype(str(path), GLYPH_RENDER_PT)
    canvas = 4 * GLYPH_RENDER_PT
    inks, boxes = [], []
    for ch in GLYPHS:
        im = Image.new("L", (canvas, canvas), 0)
        ImageDraw.Draw(im).text((canvas // 4, canvas // 4), ch, fill=255, font=font, anchor="ls")
        ink = np.asarray(im)
        rows, cols = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
        if len(rows) == 0:
            return None
        inks.append(ink)
        boxes.append((rows[0], rows[-1] + 1, cols[0], cols[-1] + 1))
    top = min(b[0] for b in boxes)
    bottom = max(b[1] for b in boxes)
    widest = max(b[3] - b[2] for b in boxes)
    scale = (size - 2 * FONT_MARGIN) / max(bottom - top, widest)
    out = np.empty((len(GLYPHS), size, size), dtype=np.uint8)
    for k, (ink, (_, _, c0, c1)) in enumerate(zip(inks, boxes, strict=True)):
        crop = Image.fromarray(ink[top:bottom, c0:c1])
        w, h = max(1, round(crop.width * scale)), max(1, round(crop.height * scale))
        small = np.asarray(crop.resize((w, h), Image.LANCZOS))
        tile = np.zeros((size, size), dtype=np.uint8)
        y0, x0 = (size - h) // 2, (size - w) // 2
        tile[y0 : y0 + h, x0 : x0 + w] = small
        out[k] = 255 - tile
    return out


def build_fonts(tree: Path, size: int = FONT_SIZE) -> dict[str, np.ndarray]:
    """The fonts set's arrays: glyphs of every fonts-aenigma font that draws all 62 characters."""
    _check_pillow()
    paths = sorted(tree.rglob("*.ttf"), key=lambda p: font_class_name(str(p)))
    names, stacks, skipped = [], [], []
    for p in paths:
        g = font_glyphs(p, size)
        if g is None:
            skipped.append(p.name)
            continue
        names.append(font_class_name(str(p)))
        stacks.append(g)
    print(f"fonts: {len(names)} kept, skipped {skipped}", file=sys.stderr)
    n = len(names)
    return {
        "images": np.concatenate(stacks),
        "font": np.repeat(np.arange(n, dtype=np.int16), len(GLYPHS)),
        "char": np.tile(np.arange(len(GLYPHS), dtype=np.int8), n),
        "font_names": np.asarray(names),
        "char_names": np.asarray(list(GLYPHS)),
    }


# ---- writing ----------------------------------------------------------------------------------
def encode_images(images: np.ndarray) -> np.ndarray:
    """uint8 pixels -> the xz (LZMA2, preset 9 extreme) bytes of their C-order buffer, as a uint8 array.

    Measured on these sets, one xz stream of the whole array beats per-image PNG and WebP lossless
    (neighbouring images share the white background and each other's shapes)."""
    import lzma

    return np.frombuffer(
        lzma.compress(np.ascontiguousarray(images).tobytes(), preset=9 | lzma.PRESET_EXTREME),
        np.uint8,
    )


def write_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """An uncompressed .npz (np.load reads it) with fixed zip timestamps and key order: the same
    arrays give the same bytes (np.savez stamps the current time)."""
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for key in sorted(arrays):
            member = io.BytesIO()
            np.lib.format.write_array(member, np.asarray(arrays[key]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            zf.writestr(info, member.getvalue())
    path.write_bytes(buf.getvalue())


def to_levels(gray: np.ndarray, levels: int = FONT_LEVELS) -> np.ndarray:
    """0-255 grey -> 0..levels-1 (rounded); the loader multiplies back by 255 / (levels - 1)."""
    return ((gray.astype(np.uint32) * (levels - 1) + 127) // 255).astype(np.uint8)


def build_files(out: Path, work: Path) -> dict[str, str]:
    """Fetch, render, encode and write emoji.npz and fonts.npz into `out`; returns {file: sha256}."""
    sys.path.insert(0, str(fetch_resvg(work)))
    modules, tree = fetch_npm(work), fetch_deb(work)
    out.mkdir(parents=True, exist_ok=True)
    emoji = build_emoji(modules)
    emoji["images"] = encode_images(emoji["images"])
    emoji["images_shape"] = np.asarray(
        [len(emoji["label"]), EMOJI_SIZE, EMOJI_SIZE, 3], dtype=np.int64
    )
    fonts = build_fonts(tree)
    fonts["images_shape"] = np.asarray(fonts["images"].shape, dtype=np.int64)
    fonts["images"] = encode_images(to_levels(fonts["images"]))
    fonts["levels"] = np.asarray(FONT_LEVELS, dtype=np.int64)
    sums = {}
    for name, arrays in (("emoji.npz", emoji), ("fonts.npz", fonts)):
        write_npz(out / name, arrays)
        sums[name] = hashlib.sha256((out / name).read_bytes()).hexdigest()
        print(
            f"{name}: {(out / name).stat().st_size / 1e6:.2f} MB sha256 {sums[name]}",
            file=sys.stderr,
        )
    return sums


def fetch_resvg(work: Path) -> Path:
    """pip install the pinned resvg-py into work/py (not into the running environment); returns that folder."""
    target = work / "py"
    name, version = RESVG_PIN
    if not (target / f"{name.replace('-', '_')}-{version}.dist-info").exists():
        run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--no-deps",
                "--target",
                str(target),
                f"{name}=={version}",
            ],
            env={"PIP_CONFIG_FILE": os.devnull, "PIP_FIND_LINKS": ""},
        )
    return target


def read_sums(path: Path) -> dict[str, str]:
    """{file name: sha256} of a SHA256SUMS file (sha256sum's format)."""
    sums = {}
    for line in path.read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            sums[name.lstrip("*")] = digest
    return sums


def main(argv: list[str] | None = None) -> None:
    here = Path(__file__).resolve().parents[1]
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--work", type=Path, default=Path("/tmp/dml-embedded-build"), help="downloads and scratch"
    )
    parser.add_argument("--out", type=Path, default=here / "dml" / "data" / "embedded")
    parser.add_argument(
        "--check",
        action="store_true",
        help="build into WORK/out and compare with OUT/SHA256SUMS instead of writing OUT",
    )
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    target = args.work / "out" if args.check else args.out
    sums = build_files(target, args.work)
    if args.check:
        want = read_sums(args.out / "SHA256SUMS")
        bad = {n: (want.get(n), d) for n, d in sums.items() if want.get(n) != d}
        if bad:
            raise SystemExit(f"rebuilt files differ from {args.out / 'SHA256SUMS'}: {bad}")
        print(f"rebuilt {', '.join(sums)}: identical to {args.out / 'SHA256SUMS'}")
        return
    (args.out / "SHA256SUMS").write_text("".join(f"{d}  {n}\n" for n, d in sorted(sums.items())))


if __name__ == "__main__":
    main()
