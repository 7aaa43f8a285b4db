"""Run identity: claims that need the same run share its folder; a changed setting never reuses one."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from dml.reproduce.claims import CLAIMS, W2, W3, claims_of
from dml.reproduce.grids import BASE, FULL, QUICK, RunSpec
from dml.reproduce.pipeline import all_specs, plan


def test_claims_share_runs_with_the_same_overrides():
    runs = plan(CLAIMS, FULL, Path("/out"))
    assert runs["W3"]["margin+dw"][0].folder == runs["W2"]["margin+dw"][0].folder
    assert runs["W1"]["margin+dw"][3].folder == runs["W2"]["margin+dw"][3].folder
    assert runs["M2"]["ms d=64"][0].folder == runs["M1"]["ms-loss+ms-mining"][0].folder
    assert runs["L2"]["triplet+easy-pos"][0].folder == runs["L1"]["triplet+easy-pos"][0].folder
    # 9 (W2) + 3 (L1) + 4 new (L2) + 3 (M1) + 3 new (M2) methods
    assert len(all_specs(runs)) == 22 * len(FULL.seeds)


def test_folder_depends_on_setting_method_and_seed_only():
    a = RunSpec(("dataset=digits",), ("loss=margin",), 0, Path("/out"))
    assert a.folder == RunSpec(("dataset=digits",), ("loss=margin",), 0, Path("/out")).folder
    assert a.folder.name == "seed_0" and a.folder.parent.name.startswith("loss-margin-")
    assert a.folder != replace(a, seed=1).folder
    assert a.folder.parent != replace(a, setting=("dataset=synthetic",)).folder.parent
    assert a.folder.parent != replace(a, method=("loss=triplet",)).folder.parent
    assert a.overrides == ("dataset=digits", "loss=margin", "seed=0")


def test_set_overrides_replace_the_settings_value_of_their_key():
    profile = replace(
        FULL, extra=("dataset=emoji", "backbone=efficientnet_lite0", "trainer.max_epochs=3")
    )
    setting = profile.setting("wu2017")
    assert "dataset=emoji" in setting and "dataset=digits" not in setting
    assert "backbone=efficientnet_lite0" in setting and "backbone=small_cnn" not in setting
    assert [o for o in setting if o.startswith("trainer.max_epochs")] == ["trainer.max_epochs=3"]
    assert all(o in setting for o in BASE)


def test_every_run_logs_what_the_measures_read():
    for profile in (FULL, QUICK):
        for paper in profile.settings:
            setting = profile.setting(paper)
            assert "logger=csv" in setting and "eval.before_training=true" in setting
            assert any("dml.training.callbacks.TrainClock" in o for o in setting)
    assert all("dataset.eval_levels=[fine,coarse]" in FULL.setting(p) for p in ("levi2020",))


def test_quick_and_full_cover_every_claim_with_at_least_two_seeds():
    for profile in (FULL, QUICK):
        assert len(profile.seeds) >= 2
        assert {c.paper for c in CLAIMS} == set(profile.settings)


def test_claims_of():
    assert [c.id for c in claims_of("wu2017")] == ["W1", "W2", "W3"]
    assert [c.id for c in claims_of("all")] == ["W1", "W2", "W3", "L1", "L2", "M1", "M2"]
    assert W2 in claims_of("wu2017") and W3 in claims_of("wu2017")
    with pytest.raises(ValueError, match="unknown paper"):
        claims_of("smith2021")
