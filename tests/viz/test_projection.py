import numpy as np
import pytest

from dml.viz import projection
from dml.viz.figures import save_png
from dml.viz.projection import project_2d, projection_figure, select_points


def test_select_points_caps_classes_and_points():
    labels = np.repeat(np.arange(50), 10)
    idx = select_points(labels, max_points=100, max_classes=20, seed=0)
    assert len(idx) == 100 and len(np.unique(labels[idx])) <= 20
    assert np.array_equal(idx, np.sort(idx))
    assert np.array_equal(select_points(labels[:30], 1000, 20), np.arange(30))


def test_tsne_separates_digit_classes(tmp_path, digit_embeddings, png_size):
    emb, labels = digit_embeddings
    fig = projection_figure(emb, labels, method="tsne", max_points=400, seed=0)
    assert png_size(save_png(fig, tmp_path / "p.png")) == (700, 600)
    xy = project_2d(emb[:300].numpy(), method="tsne", seed=0, tsne_iterations=250)
    assert xy.shape == (300, 2) and np.isfinite(xy).all()
    # a point's nearest 2-D neighbour mostly shares its class (chance: about 0.2 for 5 classes;
    # 250 iterations only end the early exaggeration, so the map is not yet tight)
    lab = labels[:300].numpy()
    d = ((xy[:, None] - xy[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    assert (lab[d.argmin(1)] == lab).mean() > 0.6


def test_pca_and_bad_method(digit_embeddings):
    emb, _ = digit_embeddings
    assert project_2d(emb[:50].numpy(), method="pca").shape == (50, 2)
    with pytest.raises(ValueError, match="not one of"):
        project_2d(emb[:50].numpy(), method="mds")


def test_umap_missing_is_a_clear_error(monkeypatch, digit_embeddings):
    monkeypatch.setattr(projection, "umap_available", lambda: False)
    with pytest.raises(ValueError, match="umap-learn"):
        project_2d(digit_embeddings[0][:50].numpy(), method="umap")
