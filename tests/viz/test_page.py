import json
from pathlib import Path

import pytest

from dml.viz.figures import new_figure, save_png
from dml.viz.page import run_plots, write_plots_page


def _run(root: Path, name: str, plots: list[str], recall: float | None = None) -> Path:
    run = root / "runs" / name
    for p in plots:
        save_png(new_figure(1, 1), run / "plots" / f"{p}.png")
    save_png(
        new_figure(1, 1), run / "plots" / "epoch_000" / "projection.png"
    )  # periodic: not on the page
    run.mkdir(parents=True, exist_ok=True)
    if recall is not None:
        (run / "results.json").write_text(
            json.dumps({"dataset": "digits", "metrics": {"recall@1": recall}})
        )
        (run / ".hydra").mkdir()
        (run / ".hydra" / "overrides.yaml").write_text(
            "- loss=margin\n- sampler=distance_weighted\n"
        )
    return run


def test_run_plots_in_reading_order(tmp_path):
    run = _run(tmp_path, "a", ["training_curves", "zzz_custom", "projection", "retrieval_grid"])
    assert list(run_plots(run)) == ["retrieval_grid", "projection", "training_curves", "zzz_custom"]


def test_html_page_links_every_plot_relative_to_the_page(tmp_path):
    a = _run(tmp_path, "a", ["retrieval_grid", "projection"], recall=0.9)
    b = _run(tmp_path, "b", ["projection", "recall_curve"])
    page = write_plots_page([a, b], tmp_path / "report" / "plots.html")
    text = page.read_text()
    assert text.startswith("<!DOCTYPE html>")
    assert "loss=margin sampler=distance_weighted · digits · recall@1 0.900" in text
    srcs = [s.split('"')[0] for s in text.split('<img src="')[1:]]
    assert len(srcs) == 4 and all(not Path(s).is_absolute() for s in srcs)
    assert all((page.parent / s).is_file() for s in srcs)
    assert "epoch_000" not in text
    # rows in reading order; b has no grid, a no curve
    assert (
        text.index(">retrieval_grid<") < text.index(">projection<") < text.index(">recall_curve<")
    )


def test_markdown_page_and_format_from_suffix(tmp_path):
    a = _run(tmp_path, "a", ["retrieval_grid"])
    page = write_plots_page([a], tmp_path / "plots.md")
    text = page.read_text()
    assert (
        "| retrieval_grid | [![retrieval_grid](runs/a/plots/retrieval_grid.png)](runs/a/plots/retrieval_grid.png) |"
        in text
    )
    assert write_plots_page([a], tmp_path / "x.txt", fmt="md").read_text() == text


def test_same_folder_names_are_told_apart_and_errors(tmp_path):
    a = _run(tmp_path / "s1", "0", ["projection"])
    b = _run(tmp_path / "s2", "0", ["projection"])
    text = write_plots_page([a, b], tmp_path / "p.html").read_text()
    assert "s1/runs/0" in text and "s2/runs/0" in text
    with pytest.raises(FileNotFoundError, match="nope"):
        write_plots_page([tmp_path / "nope"], tmp_path / "p.html")
    with pytest.raises(ValueError, match="fmt"):
        write_plots_page([a], tmp_path / "p.html", fmt="pdf")
