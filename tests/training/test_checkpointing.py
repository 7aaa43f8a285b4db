"""Atomic checkpoint writes, safe loads with clear errors, RNG/batch-sampler state, compatibility checks."""

from __future__ import annotations

import logging
import os
import random
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from dml.config import ConfigError
from dml.data.datamodule import batch_sampler_state
from dml.training.checkpointing import (
    AtomicCheckpointIO,
    capture_rng_states,
    check_compatible,
    config_differences,
    load_model_weights,
    read_checkpoint,
    remove_stale_temp_files,
    restore_rng_states,
    resume_checkpoint,
    state_dict_mismatches,
)

REPO = Path(__file__).resolve().parents[2]


def _ckpt(dim: int = 4, **config) -> dict:
    return {
        "state_dict": {
            "model.head.weight": torch.zeros(dim, 8),
            "model.head.bias": torch.zeros(dim),
        },
        "hyper_parameters": {
            "config": {"embedding_dim": dim, "seed": 0, "dataset": {"name": "digits"}, **config}
        },
        "global_step": 3,
    }


# ---- atomic writes ---------------------------------------------------------------------------
def test_save_then_load_round_trips_with_weights_only(tmp_path):
    io = AtomicCheckpointIO()
    io.save_checkpoint(_ckpt(), tmp_path / "c" / "last.ckpt")
    loaded = io.load_checkpoint(tmp_path / "c" / "last.ckpt")
    assert torch.equal(loaded["state_dict"]["model.head.weight"], torch.zeros(4, 8))
    assert [p.name for p in (tmp_path / "c").iterdir()] == ["last.ckpt"]  # no temporary file left


def test_a_save_that_fails_midway_keeps_the_previous_file(tmp_path, monkeypatch):
    io = AtomicCheckpointIO()
    target = tmp_path / "last.ckpt"
    io.save_checkpoint(_ckpt(dim=4), target)

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("dml.io.os.replace", crash)
    with pytest.raises(OSError, match="disk full"):
        io.save_checkpoint(_ckpt(dim=6), target)
    assert read_checkpoint(target)["state_dict"]["model.head.bias"].shape == (4,)
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_load_refuses_weights_only_false(tmp_path):
    AtomicCheckpointIO().save_checkpoint(_ckpt(), tmp_path / "a.ckpt")
    with pytest.raises(ValueError, match="weights_only=True"):
        AtomicCheckpointIO().load_checkpoint(tmp_path / "a.ckpt", weights_only=False)


def test_remove_stale_temp_files_only_removes_temporaries(tmp_path):
    (tmp_path / "last.ckpt").write_bytes(b"x")
    (tmp_path / ".last.ckpt.abc123.tmp").write_bytes(b"partial")
    assert [p.name for p in remove_stale_temp_files(tmp_path)] == [".last.ckpt.abc123.tmp"]
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]
    assert remove_stale_temp_files(tmp_path / "missing") == []


def test_a_temporary_file_another_rank_removed_first_is_not_an_error(tmp_path, monkeypatch):
    # under DDP every rank cleans the same checkpoints/ folder: another rank may delete a file
    # between this rank's listing and its own unlink
    (tmp_path / ".last.ckpt.abc123.tmp").write_bytes(b"partial")
    unlink = Path.unlink

    def other_rank_first(self, missing_ok=False):
        os.unlink(self)  # the other rank's unlink wins the race
        unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", other_rank_first)
    assert [p.name for p in remove_stale_temp_files(tmp_path)] == [".last.ckpt.abc123.tmp"]
    assert list(tmp_path.iterdir()) == []


# ---- reading: clear errors -------------------------------------------------------------------
def test_missing_checkpoint_names_the_path(tmp_path):
    with pytest.raises(
        ConfigError, match=re.escape(str(tmp_path / "nope.ckpt")) + ".*does not exist"
    ):
        read_checkpoint(tmp_path / "nope.ckpt")


def _torch_error(path: Path) -> str:
    """What dml's message quotes of the error torch raises for `path`: its first line, at most
    300 characters of it (torch's reason for a truncated file is longer)."""
    with pytest.raises(Exception) as info:
        torch.load(path, weights_only=True)
    return str(info.value).strip().splitlines()[0][:300]


def test_truncated_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint(_ckpt(), path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(
        ConfigError, match="cannot be read: it is truncated or not a PyTorch checkpoint"
    ) as info:
        read_checkpoint(path)
    # the message names the file and quotes torch's own reason, cut to keep the message readable
    assert repr(str(path)) in str(info.value) and f"({_torch_error(path)})" in str(info.value)


def test_an_empty_checkpoint_names_the_cause_by_its_type(tmp_path):
    # an empty file (a copy that failed before its first byte): torch raises EOFError without text
    path = tmp_path / "last.ckpt"
    path.write_bytes(b"")
    with pytest.raises(ConfigError, match=r"cannot be read: .*\(EOFError\)"):
        read_checkpoint(path)


def test_checkpoint_with_pickled_objects_is_refused(tmp_path):
    path = tmp_path / "evil.ckpt"
    torch.save(
        {"state_dict": {}, "payload": SimpleNamespace(a=1)}, path
    )  # needs an arbitrary class to unpickle
    with pytest.raises(ConfigError, match="weights_only=True") as info:
        read_checkpoint(path)
    message = str(info.value)
    # the file, and the first line of torch's (many-line) reason: dml's message stays one line
    assert repr(str(path)) in message and f"({_torch_error(path)})" in message
    assert "\n" not in message


def test_pickled_objects_are_refused_even_when_the_environment_allows_them(tmp_path, monkeypatch):
    # torch honours TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD only where a call leaves weights_only unset
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "payload": SimpleNamespace(a=1)}, path)
    with pytest.raises(ConfigError, match="weights_only=True"):
        read_checkpoint(path)


def test_a_file_without_state_dict_is_not_a_dml_checkpoint(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save({"w": torch.zeros(2)}, path)
    with pytest.raises(ConfigError, match="not a dml-train checkpoint") as info:
        read_checkpoint(path)
    assert repr(str(path)) in str(info.value)


def _mapped(path: Path) -> bool:
    with open("/proc/self/maps", encoding="utf-8") as maps:
        return any(line.rstrip().endswith(str(path)) for line in maps)


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads Linux's /proc/self/maps")
def test_mmap_maps_the_file_and_the_default_reads_it_into_memory(tmp_path):
    # run.py checks a checkpoint to resume with mmap=True, so its optimizer state is not read in
    path = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint(_ckpt(), path)
    mapped = read_checkpoint(path, mmap=True)
    assert _mapped(path)
    del mapped
    read = read_checkpoint(path)
    assert not _mapped(path) and torch.equal(read["state_dict"]["model.head.bias"], torch.zeros(4))


@pytest.mark.skipif(
    "MUTANT_UNDER_TEST" in os.environ,
    reason="a scan of the source text: mutmut's working copy holds every mutant's text side by side",
)
def test_every_torch_load_of_the_library_and_scripts_uses_weights_only_true():
    # globbed, not `git ls-files`: the check also runs in copies outside git (make mutation)
    files = sorted(
        str(p.relative_to(REPO)) for p in [*REPO.glob("dml/**/*.py"), *REPO.glob("scripts/*.py")]
    )
    assert "dml/training/checkpointing.py" in files
    offenders = []
    for name in files:
        text = (REPO / name).read_text(encoding="utf-8", errors="replace")
        for match in re.finditer(r"torch\.load\(", text):
            call = text[match.start() : text.find("\n\n", match.start())]
            depth, end = 0, 0
            for i, ch in enumerate(call):
                depth += ch == "("
                depth -= ch == ")"
                if depth == 0 and ch == ")":
                    end = i
                    break
            if "weights_only=True" not in call[:end]:
                offenders.append(f"{name}: {call[: end + 1]}")
    assert not offenders, offenders


# ---- compatibility -----------------------------------------------------------------------------
def test_shape_mismatch_names_both_shapes_and_the_config_difference(tmp_path):
    saved, current = _ckpt(dim=32), _ckpt(dim=64)
    with pytest.raises(ConfigError) as info:
        check_compatible(
            saved, tmp_path / "a.ckpt", current["state_dict"], current["hyper_parameters"]["config"]
        )
    message = str(info.value)
    assert "model.head.weight has shape [32, 8] in the checkpoint, [64, 8] in this run" in message
    assert "embedding_dim (checkpoint 32, this run 64)" in message
    # the fix comes last: where the checkpoint's settings are, or how to start over
    assert ".hydra/config.yaml" in message and message.endswith("without ckpt_path/resume.")


def test_missing_and_unexpected_keys_are_named(tmp_path):
    saved = _ckpt()
    current = {**saved["state_dict"], "loss.beta": torch.tensor(1.2)}
    with pytest.raises(
        ConfigError, match="loss.beta is in this run's model but not in the checkpoint"
    ):
        check_compatible(saved, tmp_path / "a.ckpt", current, saved["hyper_parameters"]["config"])
    fewer = {"model.head.weight": saved["state_dict"]["model.head.weight"]}
    with pytest.raises(
        ConfigError, match="model.head.bias is in the checkpoint but not in this run's model"
    ):
        check_compatible(saved, tmp_path / "a.ckpt", fewer, saved["hyper_parameters"]["config"])


def test_resume_needs_the_same_seed_and_batch_plan(tmp_path):
    saved = _ckpt()
    config = {**saved["hyper_parameters"]["config"], "seed": 1}
    with pytest.raises(ConfigError, match=r"seed \(checkpoint 0, this run 1\)"):
        check_compatible(saved, tmp_path / "a.ckpt", saved["state_dict"], config)
    # two changed settings: the error names the file and lists both
    config["dataset"] = {"name": "emoji"}
    with pytest.raises(ConfigError) as info:
        check_compatible(saved, tmp_path / "a.ckpt", saved["state_dict"], config)
    listed = "; ".join(
        config_differences(saved["hyper_parameters"]["config"], config, ("seed", "dataset.name"))
    )
    assert listed.count("(checkpoint") == 2
    assert repr(str(tmp_path / "a.ckpt")) in str(info.value) and listed in str(info.value)
    check_compatible(
        saved, tmp_path / "a.ckpt", saved["state_dict"], config, resume=False
    )  # weights alone fit


@pytest.mark.parametrize(
    ("key", "saved", "changed"),
    [
        ("dataset.name", "digits", "emoji"),
        ("dataset.classes_per_batch", 8, 16),
        ("dataset.m_per_class", 4, 2),
    ],
)
def test_resume_refuses_a_changed_batch_composition(tmp_path, key, saved, changed):
    name = key.split(".")[1]
    dataset = {"name": "digits", "classes_per_batch": 8, "m_per_class": 4, name: saved}
    ckpt = _ckpt(dataset=dataset)
    config = {**ckpt["hyper_parameters"]["config"], "dataset": {**dataset, name: changed}}
    expected = f"{key} (checkpoint {saved!r}, this run {changed!r})"
    with pytest.raises(ConfigError, match=re.escape(expected) + ".*must match"):
        check_compatible(ckpt, tmp_path / "a.ckpt", ckpt["state_dict"], config)


def test_resume_accepts_changes_outside_the_batch_plan(tmp_path):
    ckpt = _ckpt(optimizer={"lr": 1e-3}, trainer={"max_epochs": 2})
    config = {
        **ckpt["hyper_parameters"]["config"],
        "optimizer": {"lr": 1e-4},
        "trainer": {"max_epochs": 5},
    }
    check_compatible(ckpt, tmp_path / "a.ckpt", ckpt["state_dict"], OmegaConf.create(config))


def test_interpolated_settings_are_compared_by_their_values(tmp_path):
    # a checkpoint holds the resolved config; this run's may still hold ${...} interpolations
    ckpt = _ckpt(base_seed=0)
    config = OmegaConf.create({**ckpt["hyper_parameters"]["config"], "seed": "${base_seed}"})
    check_compatible(ckpt, tmp_path / "a.ckpt", ckpt["state_dict"], config)
    config.base_seed = 1
    with pytest.raises(ConfigError, match=re.escape("seed (checkpoint 0, this run 1)")):
        check_compatible(ckpt, tmp_path / "a.ckpt", ckpt["state_dict"], config)


@pytest.mark.parametrize("n", [1, 4, 5, 6])
@pytest.mark.parametrize("dims_differ", [False, True])
def test_a_model_mismatch_lists_the_first_four_differences_and_counts_the_rest(
    tmp_path, n, dims_differ
):
    saved = {f"model.w{i}": torch.zeros(2) for i in range(n)}
    current = {f"model.w{i}": torch.zeros(3) for i in range(n)}
    saved_config = {"embedding_dim": 2, "loss": {"margin": 0.2}}
    config = {"embedding_dim": 3, "loss": {"margin": 0.1}} if dims_differ else saved_config
    ckpt = {"state_dict": saved, "hyper_parameters": {"config": saved_config}}
    with pytest.raises(ConfigError) as info:
        check_compatible(ckpt, tmp_path / "a.ckpt", current, config, fix="FIX.")
    _, _, rest = str(info.value).partition(" was written by a run with another model: ")
    listed, _, after = rest.partition(". ")
    match = re.fullmatch(r"(.*?)(?: \(and (\d+) more\))?", listed)
    shown = match.group(1).split("; ")
    more = int(match.group(2)) if match.group(2) is not None else 0
    # each listed difference exactly as state_dict_mismatches words it; none lost, none invented
    assert shown == state_dict_mismatches(saved, current)[: min(n, 4)]
    assert len(shown) + more == n and (match.group(2) is not None) == (n > 4)
    # then the config values that differ (all of them here), then the fix, and nothing else
    diffs = config_differences(saved_config, config, ("embedding_dim", "backbone", "loss"))
    assert len(diffs) == (2 if dims_differ else 0)
    assert after == (f"The configs differ in: {'; '.join(diffs)}. FIX." if diffs else "FIX.")


def test_config_differences_lists_only_the_keys_asked_for():
    diffs = config_differences({"a": {"b": 1}, "c": 2}, {"a": {"b": 2}, "c": 3}, ("a",))
    assert diffs == ["a.b (checkpoint 1, this run 2)"]
    # a key only on one side, and a key that merely starts with a listed one ("ab" vs "a")
    diffs = config_differences({"ab": 1, "a": {"x": 1}}, {"ab": 2, "a": {"y": 2}}, ("a",))
    assert diffs == [
        "a.x (checkpoint 1, this run '<unset>')",
        "a.y (checkpoint '<unset>', this run 2)",
    ]
    assert config_differences({"a": 1}, {"a": 1}, ("a",)) == []


def test_load_model_weights_fits_or_names_the_difference(tmp_path):
    model = torch.nn.Module()
    model.head = torch.nn.Linear(8, 4)
    load_model_weights(model, _ckpt(dim=4), tmp_path / "a.ckpt", {"embedding_dim": 4})
    assert torch.equal(model.head.weight, torch.zeros(4, 8))
    with pytest.raises(
        ConfigError, match=r"\[6, 8\] in the checkpoint, \[4, 8\] in this run.*Drop the overrides"
    ):
        load_model_weights(model, _ckpt(dim=6), tmp_path / "a.ckpt", {"embedding_dim": 4})
    # the error names the checkpoint file and the config value that differs
    with pytest.raises(ConfigError, match=re.escape(repr(str(tmp_path / "a.ckpt")))):
        load_model_weights(model, _ckpt(dim=6), tmp_path / "a.ckpt", {"embedding_dim": 4})
    with pytest.raises(ConfigError, match=re.escape("embedding_dim (checkpoint 6, this run 4)")):
        load_model_weights(model, _ckpt(dim=6), tmp_path / "a.ckpt", {"embedding_dim": 4})


def test_load_model_weights_refuses_missing_or_extra_weights_and_names_only_the_models(tmp_path):
    model = torch.nn.Module()
    model.head = torch.nn.Linear(8, 4)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for state_dict in (
        {"model.head.weight": torch.ones(4, 8)},  # the bias is missing
        {
            "model.head.weight": torch.ones(4, 8),
            "model.head.bias": torch.ones(4),
            "model.neck.weight": torch.ones(2),
        },  # one more weight than this model has
    ):
        # the loss's own parameters are in the checkpoint but never the model's concern
        ckpt = {
            "state_dict": {**state_dict, "loss.proxies": torch.ones(3, 4)},
            "hyper_parameters": {"config": {"embedding_dim": 4}},
        }
        with pytest.raises(ConfigError, match="model.head.bias|model.neck.weight") as info:
            load_model_weights(model, ckpt, tmp_path / "a.ckpt", {"embedding_dim": 4})
        assert "loss.proxies" not in str(info.value)
        assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_resume_checkpoint_resolution(tmp_path):
    ckpt_dir = tmp_path / "checkpoints"
    cfg = OmegaConf.create({"ckpt_path": None, "resume": True})
    assert (
        resume_checkpoint(cfg, ckpt_dir) is None
    )  # nothing to resume: start at step 0 (with a warning)
    ckpt_dir.mkdir()
    (ckpt_dir / "last.ckpt").write_bytes(b"x")
    assert resume_checkpoint(cfg, ckpt_dir) == str(ckpt_dir / "last.ckpt")
    with pytest.raises(
        ConfigError,
        match=r"ckpt_path='/no/such.ckpt' does not exist.*resume=true hydra.run.dir=<run folder>",
    ):
        resume_checkpoint(
            OmegaConf.create({"ckpt_path": "/no/such.ckpt", "resume": False}), ckpt_dir
        )


def test_a_run_says_which_checkpoint_it_continues_from(tmp_path, caplog):
    given, ckpt_dir = tmp_path / "x.ckpt", tmp_path / "checkpoints"
    given.write_bytes(b"x")
    resume = OmegaConf.create({"ckpt_path": None, "resume": True})
    with caplog.at_level(logging.INFO, logger="dml"):
        resume_checkpoint(OmegaConf.create({"ckpt_path": str(given), "resume": False}), ckpt_dir)
        resume_checkpoint(resume, ckpt_dir)  # nothing to resume yet: the run starts at step 0
        ckpt_dir.mkdir()
        (ckpt_dir / "last.ckpt").write_bytes(b"x")
        resume_checkpoint(resume, ckpt_dir)
    records = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "dml"]
    assert [level for level, _ in records] == [logging.INFO, logging.WARNING, logging.INFO]
    (_, given_line), (_, missing_line), (_, last_line) = records
    assert "continuing from" in given_line and str(given) in given_line
    # resume=true that resumes nothing must not pass unnoticed: the warning names the missing
    # file and how to point the run at the earlier one
    last = str(ckpt_dir / "last.ckpt")
    assert last in missing_line and "does not exist" in missing_line
    assert "hydra.run.dir=" in missing_line
    assert "continuing from" in last_line and last in last_line


# ---- training state --------------------------------------------------------------------------
def test_rng_states_round_trip_through_a_weights_only_checkpoint(tmp_path):
    torch.manual_seed(1)
    np.random.seed(2)
    random.seed(3)
    np.random.normal()  # a cached gaussian is part of numpy's state
    state = capture_rng_states()
    # the next normal() returns the cached one: it checks that the cache is restored
    expected = (
        torch.rand(3),
        np.random.normal(),
        np.random.rand(3),
        [random.random() for _ in range(3)],
    )
    torch.save(state, tmp_path / "rng.pt")
    torch.manual_seed(99)
    np.random.seed(99)
    random.seed(99)
    restore_rng_states(torch.load(tmp_path / "rng.pt", weights_only=True))
    assert torch.equal(torch.rand(3), expected[0])
    assert np.random.normal() == expected[1]
    assert np.array_equal(np.random.rand(3), expected[2])
    assert [random.random() for _ in range(3)] == expected[3]


class _FakeCuda:
    """torch.cuda's RNG functions on `devices` simulated GPUs (the test machines have none)."""

    def __init__(self, monkeypatch, devices: int, initialized: bool = True) -> None:
        self.states = [torch.full((16,), 10 + i, dtype=torch.uint8) for i in range(devices)]
        self.sets = 0
        monkeypatch.setattr(torch.cuda, "is_available", lambda: devices > 0)
        monkeypatch.setattr(torch.cuda, "is_initialized", lambda: initialized)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: devices)
        monkeypatch.setattr(
            torch.cuda, "get_rng_state_all", lambda: [s.clone() for s in self.states]
        )
        monkeypatch.setattr(torch.cuda, "set_rng_state_all", self._set_all)

    def _set_all(self, states) -> None:
        self.sets += 1
        self.states = [s.clone() for s in states]

    def draw(self) -> None:
        """Advance every device's generator, as CUDA draws would."""
        self.states = [s + 1 for s in self.states]


def test_cuda_rng_states_round_trip_on_as_many_devices(tmp_path, monkeypatch):
    cuda = _FakeCuda(monkeypatch, devices=2)
    saved = [s.clone() for s in cuda.states]
    torch.save(capture_rng_states(), tmp_path / "rng.pt")
    cuda.draw()
    restore_rng_states(torch.load(tmp_path / "rng.pt", weights_only=True))
    assert cuda.sets == 1 and all(
        torch.equal(a, b) for a, b in zip(cuda.states, saved, strict=True)
    )


@pytest.mark.parametrize("devices", [0, 1])
def test_cuda_rng_states_are_left_alone_on_another_device_count(tmp_path, monkeypatch, devices):
    _FakeCuda(monkeypatch, devices=2)
    torch.save(capture_rng_states(), tmp_path / "rng.pt")  # a 2-GPU run's checkpoint
    expected = torch.rand(2)
    cuda = _FakeCuda(monkeypatch, devices=devices)  # resumed with another device count
    restore_rng_states(torch.load(tmp_path / "rng.pt", weights_only=True))
    assert cuda.sets == 0
    assert torch.equal(torch.rand(2), expected)  # the CPU streams are still restored


def test_capturing_does_not_initialise_cuda_in_a_process_that_never_used_it(monkeypatch):
    # get_rng_state_all would create a CUDA context on every device (and break forked workers)
    _FakeCuda(monkeypatch, devices=2, initialized=False)
    assert "cuda" not in capture_rng_states()


def _trainer(epoch: int, started: int, completed: int, processed: int, batches: int = 5):
    progress = SimpleNamespace(started=started, completed=completed)
    batch = SimpleNamespace(processed=processed)
    loop = SimpleNamespace(
        epoch_progress=SimpleNamespace(current=progress),
        epoch_loop=SimpleNamespace(batch_progress=SimpleNamespace(current=batch)),
    )
    return SimpleNamespace(current_epoch=epoch, fit_loop=loop, num_training_batches=batches)


@pytest.mark.parametrize(
    ("trainer", "expected"),
    [
        (
            _trainer(epoch=1, started=2, completed=1, processed=3),
            (1, 3),
        ),  # mid-epoch: 3 batches trained
        (
            _trainer(epoch=1, started=2, completed=1, processed=5),
            (2, 0),
        ),  # all batches done, evaluation pending
        (
            _trainer(epoch=2, started=2, completed=2, processed=5),
            (2, 0),
        ),  # between epochs (end of training)
    ],
)
def test_batch_sampler_state_counts_trained_batches_not_prefetched_ones(trainer, expected):
    sampler = SimpleNamespace(
        state_dict=lambda: {"epoch": 9, "position": 4, "seed": 7}
    )  # prefetched ahead
    state = batch_sampler_state(trainer, sampler)
    assert (state["epoch"], state["position"]) == expected and state["seed"] == 7


# ---- guards found missing by mutation testing (make mutation) --------------------------------
def test_save_rejects_storage_options_and_load_passes_map_location(tmp_path):
    io = AtomicCheckpointIO()
    with pytest.raises(TypeError, match="takes no storage_options"):
        io.save_checkpoint(_ckpt(), tmp_path / "a.ckpt", storage_options={"x": 1})
    assert not (tmp_path / "a.ckpt").exists()
    io.save_checkpoint(_ckpt(), tmp_path / "a.ckpt")
    seen = []

    def where(storage, location):
        seen.append(location)
        return storage

    loaded = io.load_checkpoint(tmp_path / "a.ckpt", map_location=where)
    assert seen and loaded["global_step"] == 3
    assert io.load_checkpoint(tmp_path / "a.ckpt", weights_only=True)["global_step"] == 3


def test_read_checkpoint_refuses_a_folder_and_a_checkpoint_without_config(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        read_checkpoint(tmp_path)
    ckpt = _ckpt()
    del ckpt["hyper_parameters"]
    with pytest.raises(
        ConfigError, match=re.escape(repr(str(tmp_path / "a.ckpt"))) + ".*holds no run config"
    ):
        check_compatible(ckpt, tmp_path / "a.ckpt", ckpt["state_dict"], {})
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(ConfigError, match="holds no state_dict"):
        read_checkpoint(tmp_path / "list.pt")
    mapped = tmp_path / "m.ckpt"
    AtomicCheckpointIO().save_checkpoint(_ckpt(), mapped)
    assert read_checkpoint(mapped, mmap=True)["global_step"] == 3


def test_many_mismatches_are_summarised(tmp_path):
    saved = {"state_dict": {f"model.w{i}": torch.zeros(2) for i in range(6)}}
    saved["hyper_parameters"] = {"config": {"embedding_dim": 2}}
    current = {f"model.w{i}": torch.zeros(3) for i in range(6)}
    with pytest.raises(ConfigError) as info:
        check_compatible(saved, tmp_path / "a.ckpt", current, {"embedding_dim": 2})
    message = str(info.value)
    assert "model.w3 has shape [2]" in message and "model.w4" not in message
    assert "(and 2 more)" in message and "The configs differ" not in message


def test_shapes_of_non_tensors_are_not_compared():
    from dml.training.checkpointing import state_dict_mismatches

    assert state_dict_mismatches({"a": 1, "b": torch.zeros(2)}, {"a": 2, "b": torch.zeros(2)}) == []


def test_load_model_weights_takes_only_the_prefixed_weights(tmp_path):
    model = torch.nn.Linear(8, 4)
    ckpt = {
        "state_dict": {
            "model.weight": torch.ones(4, 8),
            "model.bias": torch.ones(4),
            "loss.beta": torch.ones(1),
        },
        "hyper_parameters": {"config": {"embedding_dim": 4}},
    }
    load_model_weights(model, ckpt, tmp_path / "a.ckpt", {"embedding_dim": 4})
    assert torch.equal(model.weight, torch.ones(4, 8))


def test_an_existing_ckpt_path_wins_over_resume(tmp_path):
    path = tmp_path / "x.ckpt"
    path.write_bytes(b"x")
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.ckpt").write_bytes(b"x")
    cfg = OmegaConf.create({"ckpt_path": str(path), "resume": True})
    assert resume_checkpoint(cfg, tmp_path / "checkpoints") == str(path)
    cfg = OmegaConf.create({"ckpt_path": None, "resume": False})
    assert resume_checkpoint(cfg, tmp_path / "checkpoints") is None


def test_training_state_holds_rng_skipped_steps_and_the_sampler_state():
    from dml.training.checkpointing import training_state

    sampler = SimpleNamespace(state_dict=lambda: {"seed": 5})
    state = training_state(sampler, nonfinite_steps=2.0)
    assert state["nonfinite_steps"] == 2 and isinstance(state["nonfinite_steps"], int)
    assert state["sampler"] == {"seed": 5}
    assert set(state["rng"]) >= {"torch", "numpy", "python"}
    assert "sampler" not in training_state(object(), 0)
