"""dml-data: download the public benchmark archives and check dataset folders.

dml-data download cub200 --root ~/dml_data/cub200
dml-data check sop --root ~/dml_data/sop [--verify-images]
dml-data check folder --root /data/my_images --verify-images   # your own data (folder or csv)
dml-data cache cub200 --root ... --cache-dir ... --size 256

Exit codes: 0 done / every check passed; 1 a check found problems (counts, bad images) or the
network failed a download; 2 bad input (an unknown dataset or option, a folder without the
dataset's files, an archive whose checksum is wrong): one line from dml, nothing half-written.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from dml.data.registry import DATASETS, dataset_info, default_root


def _download(args: argparse.Namespace) -> int:
    from dml.data.download import ChecksumError, DownloadError, fetch

    info = dataset_info(args.name)
    root = Path(args.root or default_root(info.name)).expanduser()
    if not info.archives:
        print(
            f"{info.name} cannot be downloaded automatically.\n{info.hand_download.replace('ROOT', str(root))}",
            file=sys.stderr,
        )
        return 2
    created = not root.exists()
    for archive in info.archives:
        if args.from_dir:  # files fetched elsewhere: verify and unpack them the same way
            source = Path(args.from_dir).expanduser().resolve() / archive.name
            archive = dataclasses.replace(archive, url=source.as_uri())
        print(f"{info.name}: {archive.url} -> {root}")
        try:
            fetch(
                archive,
                root,
                keep_archive=args.keep_archive,
                progress=not args.quiet,
                retries=args.retries,
            )
        except (DownloadError, ValueError, OSError) as err:
            hint = ""
            if not args.from_dir and not isinstance(err, ChecksumError):
                hint = (
                    f"; without network here, fetch {', '.join(a.url for a in info.archives)} "
                    f"elsewhere, put the file(s) in a folder and run: dml-data download {info.name} "
                    f"--root {root} --from-dir <that folder>"
                )
            print(f"error: {err}{hint}", file=sys.stderr)
            if created and root.is_dir() and not any(root.iterdir()):
                root.rmdir()  # nothing half-written: the folder this command made is removed
            # a wrong archive (checksum) or a missing --from-dir file is bad input; the network is not
            return 2 if args.from_dir or isinstance(err, ChecksumError) else 1
    print(f"done; check it with: dml-data check {info.name} --root {root}")
    return 0


def _check(args: argparse.Namespace) -> int:
    info = dataset_info(args.name)  # an unknown name is answered before torch is imported
    from dml.data.check import check_dataset, format_reports

    root = Path(args.root or default_root(info.name)).expanduser()
    options = {}
    for flag, key, names in (
        ("--csv-file", "csv_file", ("csv",)),
        ("--train-fraction", "train_fraction", ("folder", "csv")),
    ):
        value = getattr(args, key)
        if value is not None:
            if info.name not in names:
                print(f"error: {flag} applies to {' and '.join(names)} only", file=sys.stderr)
                return 2
            options[key] = value
    try:
        reports = check_dataset(
            info.name, root, verify_images=args.verify_images, progress=not args.quiet, **options
        )
    except (OSError, ValueError) as err:  # the folder lacks the dataset's files: bad input
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(format_reports(info.name, root, reports))
    return 0 if all(r.ok for r in reports) else 1


def _cache(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    info = dataset_info(args.name)
    root = Path(args.root or default_root(info.name)).expanduser()
    extra = {"crop_to_bbox": True} if args.crop_to_bbox else {}
    splits = getattr(info.cls, "available_splits", lambda root: info.splits)(root)
    for split in splits:
        data = info.cls(
            root,
            split=split,
            cache_dir=args.cache_dir,
            cache_size=args.size,
            skip_bad_images=True,
            check_counts=False,
            **extra,
        )
        for index in tqdm(range(len(data)), desc=f"{info.name} {split}", disable=args.quiet):
            data.load_image_or_substitute(index)
    print(
        f"cached under {data.cache.dir}; train with dataset.cache_dir={args.cache_dir} "
        f"dataset.cache_size={args.size}"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    names = ", ".join(DATASETS)
    parser = argparse.ArgumentParser(
        prog="dml-data", description="Download and check benchmark datasets."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    public = ", ".join(name for name, info in DATASETS.items() if info.archives)
    dl = sub.add_parser(
        "download", help=f"download and unpack a dataset's public archives ({public})"
    )
    dl.add_argument("name", help=names)
    dl.add_argument(
        "--root", help="target folder (default $DML_DATA/<name>, else ~/dml_data/<name>)"
    )
    dl.add_argument(
        "--from-dir",
        help="take the archives from this folder instead of the internet (same md5 check and unpacking)",
    )
    dl.add_argument("--keep-archive", action="store_true", help="keep the archive after unpacking")
    dl.add_argument(
        "--retries", type=int, default=3, help="resume attempts after a dropped connection"
    )
    dl.add_argument("--quiet", action="store_true", help="no progress bar")
    dl.set_defaults(func=_download)

    ck = sub.add_parser(
        "check", help="count images and classes per split against the official numbers"
    )
    ck.add_argument("name", help=names)
    ck.add_argument("--root", help="dataset folder (default $DML_DATA/<name>)")
    ck.add_argument("--verify-images", action="store_true", help="also decode every image")
    ck.add_argument("--csv-file", help="csv: the table under --root (dataset.csv_file)")
    ck.add_argument(
        "--train-fraction",
        type=float,
        help="folder, csv without a split column: share of the sorted classes for train "
        "(dataset.train_fraction, default 0.5)",
    )
    ck.add_argument("--quiet", action="store_true", help="no progress bar")
    ck.set_defaults(func=_check)

    ca = sub.add_parser(
        "cache", help="fill the pre-resized image cache (dataset.cache_dir) ahead of training"
    )
    ca.add_argument("name", help=names)
    ca.add_argument("--root", help="dataset folder (default $DML_DATA/<name>)")
    ca.add_argument("--cache-dir", required=True, help="where the resized copies go")
    ca.add_argument("--size", type=int, default=256, help="shorter side of the cached images (px)")
    ca.add_argument(
        "--crop-to-bbox", action="store_true", help="cache the box crops (cub200, cars196)"
    )
    ca.add_argument("--quiet", action="store_true", help="no progress bar")
    ca.set_defaults(func=_cache)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``dml-data`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ValueError as err:  # unknown dataset name
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
