"""dml-report: grouping by config minus seed, mean and std, published rows, formats, CLI."""

from __future__ import annotations

import csv
import io
import json
import sys
import types
from pathlib import Path

import pytest
import yaml

from dml.cli.report import main
from dml.report import ReportError, load_runs, render, summarize

PUBLISHED = {
    "paper": "Wu et al. 2017",
    "method": "Margin, ResNet-50, 128-d",
    "metrics": {"recall@1": 63.6, "recall@2": 74.4},
}


def write_run(
    folder: Path,
    seed: int,
    metrics: dict,
    overrides: list[str] | None = None,
    dataset: str = "cub200",
    **config,
) -> Path:
    """A run folder as dml-train leaves it: results.json (+ .hydra/overrides.yaml)."""
    folder.mkdir(parents=True)
    cfg = {
        "seed": seed,
        "dataset": {"name": dataset, "num_workers": 4, "train": {"root": f"/data/{seed}"}},
        "loss": {"_target_": "dml.losses.MarginLoss", "margin": 0.2},
        "trainer": {"max_epochs": 10, "devices": 1, "default_root_dir": str(folder)},
        "paths": {"output_dir": str(folder)},
        "logger": {"wandb": {"save_dir": str(folder)}},
        "callbacks": {"model_checkpoint": {"dirpath": str(folder / "checkpoints")}},
    }
    for key, value in config.items():
        node = cfg
        *parents, last = key.split("__")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    (folder / "results.json").write_text(
        json.dumps({"dataset": dataset, "metrics": metrics, "config": cfg})
    )
    if overrides is not None:
        (folder / ".hydra").mkdir()
        (folder / ".hydra" / "overrides.yaml").write_text(
            yaml.safe_dump([*overrides, f"seed={seed}"])
        )
    return folder


@pytest.fixture
def grid(tmp_path) -> Path:
    """A multirun: margin x3 seeds (with published numbers), triplet x2 seeds."""
    root = tmp_path / "multirun"
    for i, (r1, r2) in enumerate([(0.5, 0.7), (0.6, 0.8), (0.7, 0.9)]):
        write_run(
            root / str(i),
            i,
            {"recall@1": r1, "recall@2": r2, "recall@10": 0.95, "num_queries": 100},
            ["experiment=wu2017_margin_cub", "loss=margin"],
            published=PUBLISHED,
        )
    for i, r1 in enumerate([0.40, 0.44]):
        write_run(
            root / str(3 + i),
            i,
            {"recall@1": r1, "recall@2": 0.6, "recall@10": 0.9, "num_queries": 100},
            ["experiment=wu2017_margin_cub", "loss=triplet"],
            published=PUBLISHED,
            loss={"_target_": "dml.losses.TripletLoss", "margin": 0.2},
        )
    return root


def test_rows_are_methods_with_mean_and_std_over_seeds(grid):
    (table,) = summarize(load_runs([grid]))
    ours = {r.method: r for r in table.rows if r.source == "ours"}
    assert set(ours) == {"loss=margin", "loss=triplet"}
    margin, triplet = ours["loss=margin"], ours["loss=triplet"]
    assert margin.n == 3 and triplet.n == 2
    assert margin.values["recall@1"][0] == pytest.approx(60.0)
    assert margin.values["recall@1"][1] == pytest.approx(10.0)  # sample std of 50, 60, 70
    assert triplet.values["recall@1"] == (pytest.approx(42.0), pytest.approx(2**0.5 * 2))
    assert table.columns == ["recall@1", "recall@2", "recall@10"]  # numeric order, counts left out
    assert table.common == "experiment=wu2017_margin_cub"
    assert margin.config == "loss=margin" and len(margin.runs) == 3


def test_published_numbers_sit_beside_ours_once(grid):
    (table,) = summarize(load_runs([grid]))
    published = [r for r in table.rows if r.source == "published"]
    assert len(published) == 1  # both groups carry the same experiment's numbers
    assert published[0].values == {"recall@1": (63.6, None), "recall@2": (74.4, None)}
    assert published[0].method == "Wu et al. 2017 (published)"
    assert table.rows.index(published[0]) == 0 and table.rows[1].source == "ours"


def test_settings_that_do_not_change_the_method_do_not_split_rows(tmp_path):
    write_run(tmp_path / "a", 0, {"recall@1": 0.5}, trainer__devices=1, dataset__num_workers=0)
    write_run(tmp_path / "b", 1, {"recall@1": 0.7}, trainer__devices=2, dataset__num_workers=8)
    write_run(tmp_path / "c", 0, {"recall@1": 0.1}, trainer__max_epochs=20)
    (table,) = summarize(load_runs([tmp_path]))
    assert sorted(r.n for r in table.rows) == [1, 2]
    labels = {r.method for r in table.rows}
    assert labels == {
        "trainer.max_epochs=10",
        "trainer.max_epochs=20",
    }  # no overrides: config keys name rows
    (merged,) = summarize(load_runs([tmp_path]), ignore=["trainer.max_epochs"])
    assert [r.n for r in merged.rows] == [3]


def test_one_table_per_dataset_and_metric_selection(tmp_path):
    write_run(tmp_path / "cub", 0, {"recall@1": 0.5, "map@r": 0.2, "lfw/threshold": 0.31})
    write_run(tmp_path / "sop", 0, {"recall@1": 0.7, "recall@1000": 0.99}, dataset="sop")
    tables = summarize(load_runs([tmp_path / "cub", tmp_path / "sop" / "results.json"]))
    assert [t.dataset for t in tables] == ["cub200", "sop"]
    assert tables[0].columns == ["recall@1", "map@r"]  # the verification threshold is not a score
    assert tables[1].columns == ["recall@1", "recall@1000"]
    (cub,) = summarize(load_runs([tmp_path / "cub"]), metrics=["map@r"])
    assert cub.columns == ["map@r"]
    with pytest.raises(ReportError, match="nmi.*available: recall@1, map@r"):
        summarize(load_runs([tmp_path / "cub"]), metrics=["nmi"])


def test_class_disjoint_fold_runs_are_one_row_and_val_metrics_stay_out_of_the_table(tmp_path):
    """The 4 fold runs of a Musgrave et al. 2020 experiment (dataset.fold=0,1,2,3 -m) average like seeds."""
    for fold, m in enumerate([0.20, 0.22, 0.24, 0.26]):
        write_run(
            tmp_path / str(fold),
            0,
            {"map@r": m, "recall@1": 0.5, "val/map@r": 0.9, "val/num_queries": 10},
            ["experiment=musgrave2020_margin_cub", f"dataset.fold={fold}"],
            dataset__folds=4,
            dataset__fold=fold,
        )
    write_run(
        tmp_path / "whole",
        0,
        {"map@r": 0.3, "recall@1": 0.6},
        ["experiment=musgrave2020_margin_cub"],
    )
    (table,) = summarize(load_runs([tmp_path]))
    folds = next(r for r in table.rows if r.n == 4)
    assert folds.values["map@r"][0] == pytest.approx(23.0) and folds.values["map@r"][
        1
    ] == pytest.approx(2.5819889)
    assert (
        "dataset.fold" not in folds.config and len(table.rows) == 2
    )  # whole-split run: its own row
    assert table.columns == ["recall@1", "map@r"]  # validation metrics are not test numbers
    (val,) = summarize(
        load_runs([tmp_path / str(k) for k in range(4)]), metrics=["map@r", "val/map@r"]
    )
    assert val.rows[0].values["val/map@r"] == (pytest.approx(90.0), pytest.approx(0.0))
    assert "seeds or training folds" in render([table], "markdown")


def test_markdown_latex_and_csv(grid):
    tables = summarize(load_runs([grid]))
    md = render(tables, "markdown")
    assert "| method | n | R@1 | R@2 | R@10 | config |" in md
    assert (
        "| **loss=margin** (best) | 3 | 60.0 ± 10.0 | 80.0 ± 10.0 | 95.0 ± 0.0 | `loss=margin` |"
        in md
    )
    assert "| Wu et al. 2017 (published) | – | 63.6 | 74.4 | – |" in md
    tex = render(tables, "latex")
    assert "\\begin{tabular}{llrrr}" in tex and "60.0 $\\pm$ 10.0" in tex
    assert "wu2017\\_margin\\_cub" in tex and "\\bottomrule" in tex
    rows = list(csv.DictReader(io.StringIO(render(tables, "csv"))))
    margin = next(r for r in rows if r["method"] == "loss=margin")
    assert float(margin["recall@1"]) == pytest.approx(60.0) and float(
        margin["recall@1_std"]
    ) == pytest.approx(10.0)
    assert margin["config"] == "experiment=wu2017_margin_cub loss=margin" and margin["n"] == "3"
    assert (
        margin["best"] == "best"
        and next(r for r in rows if r["method"] == "loss=triplet")["best"] == ""
    )
    published = next(r for r in rows if r["source"] == "published")
    assert published["recall@1"] == "63.6" and published["recall@10"] == ""
    with pytest.raises(ReportError, match="--format 'html'"):
        render(tables, "html")


def test_bad_paths_and_files_are_clear_errors(tmp_path):
    with pytest.raises(ReportError, match="does not exist"):
        load_runs([tmp_path / "nope"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReportError, match="no results.json"):
        load_runs([tmp_path / "empty"])
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "results.json").write_text("{not json")
    with pytest.raises(ReportError, match="bad/results.json"):
        load_runs([tmp_path / "bad"])


def test_cli_prints_writes_and_reports_errors(grid, tmp_path, capsys):
    out = tmp_path / "table.tex"
    assert main([str(grid), "--format", "latex", "-o", str(out), "--metrics", "recall@1"]) == 0
    printed = capsys.readouterr().out
    assert printed == out.read_text() and "R@1" in printed and "R@2" not in printed
    assert main([str(tmp_path / "missing")]) == 2
    assert "dml-report: error:" in capsys.readouterr().err


def test_cli_plots_page(grid, tmp_path, capsys, monkeypatch):
    calls = []
    page = types.ModuleType("dml.viz.page")

    def write_plots_page(run_dirs, out, fmt=None):
        calls.append((list(run_dirs), out, fmt))
        return Path(out)

    page.write_plots_page = write_plots_page
    monkeypatch.setitem(sys.modules, "dml.viz.page", page)
    assert main([str(grid), "--plots", str(tmp_path / "p.md"), "--plots-format", "md"]) == 0
    (run_dirs, out, fmt) = calls[0]
    assert sorted(p.name for p in run_dirs) == ["0", "1", "2", "3", "4"]
    assert (out, fmt) == (str(tmp_path / "p.md"), "md")

    monkeypatch.setitem(
        sys.modules, "dml.viz.page", None
    )  # an installation without the plots module
    assert main([str(grid), "--plots"]) == 1
    captured = capsys.readouterr()
    assert (
        "| **loss=margin** (best) |" in captured.out
        and "--plots needs dml.viz.page.write_plots_page" in captured.err
    )


def test_separate_runs_are_labelled_by_the_overrides_that_differ(tmp_path):
    """Runs started one by one: each row is named by what was typed beyond the shared overrides,
    not by the resolved config keys a swapped loss or sampler changes."""
    triplet = {"_target_": "dml.losses.TripletLoss", "margin": 0.1, "swap": False, "smooth": True}
    semihard = {
        "_target_": "dml.samplers.SemiHardSampler",
        "cutoff": 0.5,
        "nonzero_loss_cutoff": 1.4,
    }
    write_run(tmp_path / "a", 0, {"recall@1": 0.5}, ["logger=csv"])
    # eval.* does not split rows, so it does not name one either (it stays in the row's config)
    write_run(
        tmp_path / "b",
        0,
        {"recall@1": 0.4},
        ["logger=csv", "loss=triplet", "eval.before_training=true"],
        loss=triplet,
    )
    write_run(
        tmp_path / "c", 0, {"recall@1": 0.6}, ["logger=csv", "sampler=semihard"], sampler=semihard
    )
    (table,) = summarize(load_runs([tmp_path]))
    assert [r.method for r in table.rows] == ["sampler=semihard", "(defaults)", "loss=triplet"]
    assert (
        table.common == "logger=csv"
        and table.rows[2].config == "loss=triplet eval.before_training=true"
    )
    # without saved overrides, a swapped class names its node once, not each of its settings
    for run in ("a", "b", "c"):
        (tmp_path / run / ".hydra" / "overrides.yaml").unlink()
    (table,) = summarize(load_runs([tmp_path]))
    assert [r.method for r in table.rows] == [
        "loss=MarginLoss sampler=SemiHardSampler",
        "loss=MarginLoss",
        "loss=TripletLoss",
    ]


def test_sweep_rows_are_sorted_best_first_by_the_monitor_and_the_best_is_marked(tmp_path):
    for i, (margin, r1, mapr) in enumerate(
        [(0.1, 0.50, 0.30), (0.2, 0.70, 0.20), (0.3, 0.60, 0.25)]
    ):
        write_run(
            tmp_path / str(i),
            0,
            {"recall@1": r1, "map@r": mapr},
            ["loss=margin", f"loss.margin={margin}"],
            loss={"_target_": "dml.losses.MarginLoss", "margin": margin},
            monitor="map@r",
        )
    (table,) = summarize(load_runs([tmp_path]))
    assert table.sorted_by == "map@r"
    assert [r.method for r in table.rows] == [
        "loss.margin=0.1",
        "loss.margin=0.3",
        "loss.margin=0.2",
    ]
    assert [r.best for r in table.rows] == [True, False, False]
    md = render([table], "markdown")
    assert "| **loss.margin=0.1** (best) | 1 |" in md and "Rows best first by MAP@R (mean)." in md
    assert "\\textbf{loss.margin=0.1}" in render([table], "latex")
    # runs that name no common monitor: the first column decides
    for i in range(3):
        path = tmp_path / str(i) / "results.json"
        data = json.loads(path.read_text())
        del data["config"]["monitor"]
        path.write_text(json.dumps(data))
    (table,) = summarize(load_runs([tmp_path]))
    assert (
        table.sorted_by == "recall@1"
        and table.rows[0].method == "loss.margin=0.2"
        and table.rows[0].best
    )


def test_baseline_columns_can_be_reported_as_rows(tmp_path, capsys):
    for seed, (trained, untrained) in enumerate([(0.6, 0.2), (0.8, 0.4)]):
        folder = write_run(tmp_path / str(seed), seed, {"recall@1": trained}, [])
        data = json.loads((folder / "results.json").read_text())
        data["baselines"] = {
            "untrained": {"recall@1": untrained},
            "raw pixels": {"recall@1": 0.1, "nmi": 0.3},
        }
        (folder / "results.json").write_text(json.dumps(data))
    (plain,) = summarize(load_runs([tmp_path]))
    assert [r.source for r in plain.rows] == ["ours"]
    (table,) = summarize(load_runs([tmp_path]), baselines=True)
    assert [(r.method, r.source, r.n) for r in table.rows] == [
        ("ours", "ours", 2),
        ("ours: untrained", "baseline", 2),
        ("ours: raw pixels", "baseline", 2),
    ]
    assert table.rows[1].values["recall@1"] == (pytest.approx(30.0), pytest.approx(2**0.5 * 10))
    assert table.columns == ["recall@1", "nmi"]
    assert main([str(tmp_path), "--baselines"]) == 0
    assert "| ours: untrained | 2 | 30.0 ± 14.1 | – |" in capsys.readouterr().out
