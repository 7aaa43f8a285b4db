"""Atomic writes: whole file or the old one, no temporary left behind, the umask's mode."""

from __future__ import annotations

import json
import os

import pytest

from dml.io import atomic_write_bytes, atomic_write_json


def test_atomic_write_json_roundtrip_and_mode(tmp_path):
    path = tmp_path / "sub" / "results.json"
    atomic_write_json(path, {"map@r": 0.5})
    assert json.loads(path.read_text()) == {"map@r": 0.5}
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    assert [p.name for p in path.parent.iterdir()] == ["results.json"]


def test_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "results.json"
    atomic_write_bytes(path, b"old")

    class Boom:
        def __len__(self):
            raise RuntimeError("disk full")

    with pytest.raises(TypeError):
        atomic_write_bytes(path, Boom())  # not bytes: the write fails midway
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]
