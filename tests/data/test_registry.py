"""The registry reads each dataset's DATASET from its module's source; the module, the registry
and configs/dataset/<name>.yaml agree on the facts they share."""

import importlib
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import get_class

from dml.data.description import DatasetInfo, read_description
from dml.data.registry import DATASETS, MODULES, dataset_info

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.mark.parametrize("module", MODULES)
def test_the_registry_reads_what_the_module_holds(module):
    imported = importlib.import_module(module)
    info = dataset_info(imported.DATASET.name)
    assert info == imported.DATASET  # the source, read without running it, is the live value
    assert info.cls.__module__ == module and info.cls.name == info.name
    assert info.cls.expected_counts == info.counts
    assert bool(info.archives) != bool(info.hand_download)


def test_every_module_is_listed_once():
    assert len(DATASETS) == len(MODULES)


@pytest.mark.parametrize("name", list(DATASETS))
def test_the_config_agrees_with_the_description(name):
    info = DATASETS[name]
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        dataset = compose("train", overrides=[f"dataset={name}"]).dataset
    assert dataset.name == name
    evaluated = [s for s in ("test", "query", "gallery") if dataset[s] is not None]
    for split in ("train", *evaluated):
        assert get_class(dataset[split]._target_) is info.cls, split
    assert {dataset[s].split for s in evaluated} <= set(info.splits)


def test_a_description_that_needs_running_is_refused(tmp_path):
    module = tmp_path / "mine.py"
    module.write_text(
        'NAME = "mine"\nDATASET = DatasetInfo(name=NAME, target="x.Y", splits=("train",))\n'
    )
    with pytest.raises(ValueError, match=r"mine.py:2: DATASET may hold only literals.*'NAME'"):
        read_description(module)
    module.write_text("DATA = 1\n")
    with pytest.raises(ValueError, match="expected a module-level DATASET"):
        read_description(module)


def test_a_dataset_without_archives_needs_a_note():
    with pytest.raises(ValueError, match="give DatasetInfo a note"):
        DatasetInfo("mine", "x.Y", ("train",))
