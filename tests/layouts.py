"""Tiny fixtures in each dataset's exact official layout, shared by every test folder (registered
as a plugin by tests/conftest.py).

Every image's size encodes its identity (width = 10 + image number, height = 10 + class
number), so tests can check that files, ids and labels were joined correctly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def write_image(path: Path, size: tuple[int, int], color=(120, 60, 30)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = "JPEG" if path.suffix.lower() in (".jpg", ".jpeg") else None
    Image.new("RGB", size, color).save(path, format=fmt)


# CUB: (image id, class id, file); ids deliberately not in sorted-filename order
CUB_CLASSES = {
    1: "001.Black_footed_Albatross",
    2: "002.Laysan_Albatross",
    100: "100.Brown_Pelican",
    101: "101.White_Pelican",
    150: "150.Sage_Thrasher",
    200: "200.Common_Yellowthroat",
}


def make_cub(root: Path) -> list[tuple[int, int, str]]:
    base = root / "CUB_200_2011"
    rows = []
    image_id = 0
    rng = np.random.default_rng(0)
    for cls, folder in CUB_CLASSES.items():
        for k in range(3):
            rows.append([cls, f"{folder}/{folder.split('.')[1]}_{k:04d}_{cls}.jpg"])
    order = rng.permutation(len(rows))  # image ids assigned in a shuffled order
    table = []
    for image_id, i in enumerate(order, start=1):
        cls, rel = rows[i]
        table.append((image_id, cls, rel))
        write_image(base / "images" / rel, (10 + image_id, 10 + cls))
    listed = sorted(table, key=lambda r: r[0])
    assert [r[2] for r in listed] != sorted(r[2] for r in listed)
    (base / "images.txt").write_text("".join(f"{i} {rel}\n" for i, _, rel in listed))
    (base / "image_class_labels.txt").write_text(
        "".join(f"{i} {c}\n" for i, c, _ in reversed(listed))
    )
    (base / "classes.txt").write_text("".join(f"{c} {n}\n" for c, n in CUB_CLASSES.items()))
    (base / "bounding_boxes.txt").write_text(
        "".join(f"{i} 2.0 3.0 5.0 6.0\n" for i, _, _ in listed)
    )
    (base / "train_test_split.txt").write_text("".join(f"{i} {i % 2}\n" for i, _, _ in listed))
    return table


def make_cars(root: Path) -> list[tuple[int, int, str]]:
    from scipy.io import savemat

    fields = ["relative_im_path", "bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "test"]
    classes = [1, 1, 2, 98, 98, 99, 150, 150, 196, 196]
    records = np.zeros((1, len(classes)), dtype=[(f, "O") for f in fields])
    table = []
    for k, cls in enumerate(classes, start=1):
        rel = f"car_ims/{k:06d}.jpg"
        write_image(root / rel, (10 + k, 10 + cls))
        records[0, k - 1] = (
            np.array([rel]),
            np.array([[3]], np.uint8),
            np.array([[4]], np.uint8),
            np.array([[7]], np.uint8),
            np.array([[9]], np.uint8),
            np.array([[cls]], np.uint8),
            np.array([[k % 2]], np.uint8),
        )
        table.append((k, cls, rel))
    names = np.empty((1, 196), dtype=object)
    names[0, :] = [f"Make Model {c}" for c in range(1, 197)]
    savemat(root / "cars_annos.mat", {"annotations": records, "class_names": names})
    return table


def make_sop(root: Path) -> dict[str, list[tuple[int, int, str]]]:
    base = root / "Stanford_Online_Products"
    out = {}
    image_id = 1
    for split, classes in (
        ("train", [1, 1, 2, 2, 2, 3]),
        ("test", [11319, 11319, 11320, 11321, 11321]),
    ):
        rows = []
        for k, cls in enumerate(classes):
            rel = f"bicycle_final/{111085122871 + cls}_{k}.JPG"
            write_image(base / rel, (10 + image_id, 10 + cls % 100))
            rows.append((image_id, cls, rel))
            image_id += 1
        (base / f"Ebay_{split}.txt").write_text(
            "image_id class_id super_class_id path\n"
            + "".join(f"{i} {c} 1 {p}\n" for i, c, p in rows)
        )
        out[split] = rows
    return out


def make_inshop(root: Path) -> list[tuple[str, str, str]]:
    rows = []
    spec = [
        ("id_00000001", "train", 3),
        ("id_00000007", "train", 2),
        ("id_00000002", "query", 2),
        ("id_00000002", "gallery", 2),
        ("id_00000005", "query", 1),
        ("id_00000005", "gallery", 3),
        ("id_00000009", "gallery", 2),
    ]  # a gallery-only item
    for item, split, n in spec:
        for k in range(n):
            rel = f"img/WOMEN/Dresses/{item}/{k:02d}_{split[0]}_front.jpg"
            write_image(root / rel, (10 + len(rows), 10 + int(item[3:])))
            rows.append((rel, item, split))
    lines = [str(len(rows)), "image_name item_id evaluation_status"]
    lines += [f"{p}  {i}  {s}" for p, i, s in rows]
    (root / "list_eval_partition.txt").write_text("\n".join(lines) + "\n")
    return rows


LFW_PEOPLE = {
    "Abel_Pacheco": 4,
    "Akhmed_Zakayev": 3,
    "AJ_Cook": 1,
    "Marsha_Thomason": 1,
    "Zico": 2,
    "Unused_Person": 1,
}
# 2 folds x (3 matched + 3 mismatched)
LFW_PAIRS = [
    ("Abel_Pacheco", 1, "Abel_Pacheco", 4),
    ("Akhmed_Zakayev", 1, "Akhmed_Zakayev", 3),
    ("Zico", 1, "Zico", 2),
    ("AJ_Cook", 1, "Marsha_Thomason", 1),
    ("Abel_Pacheco", 2, "Zico", 1),
    ("Akhmed_Zakayev", 2, "AJ_Cook", 1),
    ("Abel_Pacheco", 1, "Abel_Pacheco", 3),
    ("Akhmed_Zakayev", 2, "Akhmed_Zakayev", 3),
    ("Abel_Pacheco", 2, "Abel_Pacheco", 3),
    ("Marsha_Thomason", 1, "Zico", 2),
    ("Abel_Pacheco", 4, "AJ_Cook", 1),
    ("Zico", 2, "Akhmed_Zakayev", 1),
]


def make_lfw(root: Path) -> list[tuple[str, int, str, int]]:
    for k, (name, n) in enumerate(LFW_PEOPLE.items()):
        for i in range(1, n + 1):
            write_image(root / "lfw" / name / f"{name}_{i:04d}.jpg", (10 + i, 10 + k))
    lines = ["2\t3"]
    for a, i, b, j in LFW_PAIRS:
        lines.append(f"{a}\t{i}\t{j}" if a == b else f"{a}\t{i}\t{b}\t{j}")
    (root / "pairs.txt").write_text("\n".join(lines) + "\n")
    return LFW_PAIRS


@pytest.fixture
def cub_root(tmp_path):
    return tmp_path, make_cub(tmp_path)


@pytest.fixture
def cars_root(tmp_path):
    return tmp_path, make_cars(tmp_path)


@pytest.fixture
def sop_root(tmp_path):
    return tmp_path, make_sop(tmp_path)


@pytest.fixture
def inshop_root(tmp_path):
    return tmp_path, make_inshop(tmp_path)


@pytest.fixture
def lfw_root(tmp_path):
    return tmp_path, make_lfw(tmp_path)


@pytest.fixture
def image_writer():
    """write_image(path, size) for tests that build their own layouts."""
    return write_image


@pytest.fixture(scope="session")
def layout_makers():
    """Dataset config name -> function writing that dataset's fixture layout into a folder."""
    return {
        "cub200": make_cub,
        "cars196": make_cars,
        "sop": make_sop,
        "inshop": make_inshop,
        "lfw": make_lfw,
    }
