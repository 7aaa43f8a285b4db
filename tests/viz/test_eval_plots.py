import logging

import pytest

from dml.viz.eval_plots import EvalPlotOptions, save_eval_plots
from dml.viz.retrieval_grid import grid_pixels


def test_every_picture_of_an_eval(tmp_path, digits, digit_embeddings, png_size):
    emb, labels = digit_embeddings
    options = EvalPlotOptions(projection="pca", n_queries=4, top_k=3)
    written = save_eval_plots(
        {"test": (emb, labels)}, tmp_path, datasets={"test": digits}, options=options, strict=True
    )
    assert list(written) == ["retrieval_grid", "projection", "pair_distances", "recall_curve"]
    sizes = {name: png_size(path) for name, path in written.items()}
    assert sizes == {
        "retrieval_grid": grid_pixels(4, 3),
        "projection": (700, 600),
        "pair_distances": (700, 400),
        "recall_curve": (600, 400),
    }


def test_no_datasets_no_grid_and_a_failing_picture_is_skipped(tmp_path, digit_embeddings, caplog):
    emb, labels = digit_embeddings
    options = EvalPlotOptions(
        plots=("retrieval_grid", "projection", "recall_curve"), projection="umap"
    )
    with caplog.at_level(logging.WARNING, logger="dml"):
        written = save_eval_plots({"test": (emb[:100], labels[:100])}, tmp_path, options=options)
    # umap may be missing: then the projection fails and only the curve is written
    assert "retrieval_grid" not in written and "recall_curve" in written
    assert ("projection" in written) != ("projection failed" in caplog.text)


def test_unknown_plot_and_bad_splits():
    with pytest.raises(ValueError, match="unknown eval plot"):
        EvalPlotOptions(plots=("histogram",))
    with pytest.raises(ValueError, match="'test' or 'query'"):
        save_eval_plots({"val": (None, None)}, "unused", strict=True)
