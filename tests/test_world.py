"""dml.world: the one answer to "how many processes, which am I"; the layers import downwards only."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import dml
from dml.world import world


def test_world_without_a_process_group_and_with_given_values():
    assert world() == (1, 0)
    assert world(4, 3) == (4, 3)
    with pytest.raises(ValueError, match=r"rank must be in \[0, 2\)"):
        world(2, 2)
    with pytest.raises(ValueError, match="num_replicas must be >= 1"):
        world(0, 0)


def test_data_does_not_import_from_training():
    root = Path(dml.__file__).parent
    upward = []
    for path in sorted((root / "data").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            names += [a.name for a in node.names] if isinstance(node, ast.Import) else []
            upward += [f"{path.name}: {n}" for n in names if n.startswith("dml.training")]
    assert upward == []
