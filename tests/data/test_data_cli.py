"""dml-data: check reports counts per split, download notes for hand-only datasets, cache."""

import pytest

from dml.cli.data import main
from dml.data.cub import CUB200
from dml.data.registry import DATASETS, DatasetInfo, dataset_info


def test_check_reports_counts_and_mismatch(cub_root, capsys):
    root, _ = cub_root
    assert main(["check", "cub200", "--root", str(root), "--quiet"]) == 1
    out = capsys.readouterr().out
    assert "| train | 9 | 5,864 | 3 | 100 | MISMATCH |" in out
    assert "| test | 9 | 5,924 | 3 | 100 | MISMATCH |" in out


def test_check_ok_when_counts_match(cub_root, capsys, monkeypatch):
    monkeypatch.setattr(CUB200, "expected_counts", {"train": (9, 3), "test": (9, 3)})
    assert main(["check", "cub200", "--root", str(cub_root[0]), "--verify-images", "--quiet"]) == 0
    assert "| train | 9 | 9 | 3 | 3 | ok |" in capsys.readouterr().out


def test_check_verify_images_lists_bad_files(cub_root, capsys, monkeypatch):
    monkeypatch.setattr(CUB200, "expected_counts", {"train": (9, 3), "test": (9, 3)})
    data = CUB200(cub_root[0], "test")
    (data.image_root / data.paths[0]).write_bytes(b"broken")
    assert main(["check", "cub200", "--root", str(cub_root[0]), "--verify-images", "--quiet"]) == 1
    out = capsys.readouterr().out
    assert "1 bad image(s)" in out and data.paths[0] in out


def test_check_lfw_reports_pairs(lfw_root, capsys):
    assert main(["check", "lfw", "--root", str(lfw_root[0]), "--quiet"]) == 1  # 12 of 6,000 pairs
    assert "12 pairs (6 same) in 2 folds, expected 6,000" in capsys.readouterr().out


def test_check_missing_layout_explains(tmp_path, capsys):
    assert main(["check", "sop", "--root", str(tmp_path)]) == 2  # bad input, not a failed check
    assert "dml-data download sop" in capsys.readouterr().err


@pytest.mark.parametrize(
    "name,words", [("cars196", "cars_annos.mat"), ("inshop", "list_eval_partition.txt")]
)
def test_download_hand_only_datasets_print_instructions(tmp_path, capsys, name, words):
    assert main(["download", name, "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert words in err and str(tmp_path) in err


def test_unknown_dataset(capsys):
    assert main(["check", "imagenet"]) == 2
    assert "known: cub200, cars196, sop, inshop, lfw" in capsys.readouterr().err


def test_download_via_registry_file_url(tmp_path, monkeypatch, capsys):
    import hashlib
    import tarfile

    src = tmp_path / "src"
    (src / "lfw" / "A").mkdir(parents=True)
    (src / "lfw" / "A" / "A_0001.jpg").write_bytes(b"jpeg")
    archive = tmp_path / "lfw.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src / "lfw", arcname="lfw")
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    from dml.data.download import Archive

    info = dataset_info("lfw")
    monkeypatch.setitem(
        DATASETS,
        "lfw",
        DatasetInfo("lfw", info.cls, info.splits, (Archive(archive.as_uri(), md5),)),
    )
    root = tmp_path / "root"
    assert main(["download", "lfw", "--root", str(root), "--quiet"]) == 0
    assert (root / "lfw" / "A" / "A_0001.jpg").read_bytes() == b"jpeg"
    assert "dml-data check lfw" in capsys.readouterr().out


def test_cache_command_fills_cache(cub_root, tmp_path, capsys):
    cache = tmp_path / "cache"
    assert (
        main(
            [
                "cache",
                "cub200",
                "--root",
                str(cub_root[0]),
                "--cache-dir",
                str(cache),
                "--size",
                "8",
                "--quiet",
            ]
        )
        == 0
    )
    assert len(list((cache / "8").rglob("*.jpg"))) == 18


def test_download_from_dir_checks_md5(tmp_path, capsys):
    (tmp_path / "CUB_200_2011.tgz").write_bytes(b"not the real archive")
    code = main(
        [
            "download",
            "cub200",
            "--root",
            str(tmp_path / "root"),
            "--from-dir",
            str(tmp_path),
            "--quiet",
        ]
    )
    assert code == 2  # a wrong archive is bad input
    err = capsys.readouterr().err
    assert "expected 97eceeb196236b17998738112f37df78" in err
    assert not (tmp_path / "root" / "CUB_200_2011.tgz").exists()


def _own_images(root, classes=4, per_class=3):
    from PIL import Image

    for c in range(classes):
        (root / f"c{c}").mkdir(parents=True)
        for i in range(per_class):
            Image.new("RGB", (8, 8), (40 * c, i, 0)).save(root / f"c{c}" / f"{i}.png")
    return root


def test_check_folder_reports_each_split_and_bad_images(tmp_path, capsys):
    root = _own_images(tmp_path / "images")
    assert main(["check", "folder", "--root", str(root), "--verify-images", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "| train | 6 | - | 2 | - | ok; 3-3 images per class |" in out
    assert "| test | 6 | - | 2 | - | ok; 3-3 images per class |" in out
    (root / "c3" / "1.png").write_bytes(b"broken")
    assert (
        main(
            [
                "check",
                "folder",
                "--root",
                str(root),
                "--verify-images",
                "--quiet",
                "--train-fraction",
                "0.75",
            ]
        )
        == 1
    )
    out = capsys.readouterr().out
    assert (
        "| train | 9 | - | 3 |" in out
        and "| test | 3 | - | 1 | - | MISMATCH, 1 bad image(s)" in out
    )
    assert "c3/1.png" in out


def test_check_csv_uses_the_split_column_and_the_table_option(tmp_path, capsys):
    root = _own_images(tmp_path / "data", classes=3, per_class=2)
    rows = ["path,label,split"] + [
        f"c{c}/{i}.png,{c},{'train' if c < 2 else 'test'}" for c in range(3) for i in range(2)
    ]
    (root / "mine.csv").write_text("\n".join(rows[:-1]) + "\n")  # c2 keeps one image
    assert (
        main(
            [
                "check",
                "csv",
                "--root",
                str(root),
                "--csv-file",
                "mine.csv",
                "--verify-images",
                "--quiet",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "| train | 4 | - | 2 | - | ok; 2-2 images per class |" in out
    assert "| test | 1 | - | 1 | - | ok; 1-1 images per class, 1 class(es) with 1 image" in out
    assert main(["check", "csv", "--root", str(root), "--quiet"]) == 2  # no labels.csv there
    assert "labels.csv" in capsys.readouterr().err
    assert main(["check", "cub200", "--csv-file", "x.csv"]) == 2
    assert "--csv-file applies to csv only" in capsys.readouterr().err


def test_download_without_network_suggests_from_dir_and_leaves_nothing(
    tmp_path, monkeypatch, capsys
):
    import socket

    from dml.data.download import Archive

    with socket.socket() as sock:  # a port where nothing listens: the connection is refused
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/lfw.tgz"
    info = dataset_info("lfw")
    monkeypatch.setitem(
        DATASETS, "lfw", DatasetInfo("lfw", info.cls, info.splits, (Archive(url, "0" * 32),))
    )
    root = tmp_path / "root"
    assert main(["download", "lfw", "--root", str(root), "--quiet", "--retries", "0"]) == 1
    err = capsys.readouterr().err
    assert "nothing was downloaded" in err and ".part" not in err  # no .part file was made
    assert f"dml-data download lfw --root {root} --from-dir <that folder>" in err
    assert len(err.strip().splitlines()) == 1 and not root.exists()
