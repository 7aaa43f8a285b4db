import numpy as np
import pytest
import torch

from dml.distances import pairwise_distance
from dml.viz.figures import save_png
from dml.viz.images import raw_image
from dml.viz.retrieval_grid import choose_queries, grid_pixels, retrieval_grid_figure, top_k_results


def test_grid_of_digits_is_a_png_of_the_expected_size(tmp_path, digits, digit_embeddings, png_size):
    emb, labels = digit_embeddings
    fig = retrieval_grid_figure(
        emb, labels, lambda i: raw_image(digits, i), n_queries=8, top_k=5, seed=0
    )
    path = save_png(fig, tmp_path / "grid.png")
    assert png_size(path) == grid_pixels(8, 5)
    # the title counts right results out of 8 x 5; raw pixels retrieve digits well
    title = fig.axes[0].texts[-1].get_text()
    right = int(title.split(", ")[-1].split("/")[0])
    assert 30 <= right <= 40, title


def test_self_retrieval_results_are_the_nearest_other_items(digit_embeddings):
    emb, _ = digit_embeddings
    queries = np.array([0, 17, 400])
    got = top_k_results(emb, queries, None, 5)
    d = pairwise_distance(emb[torch.as_tensor(queries)], emb)
    d[torch.arange(3), torch.as_tensor(queries)] = float("inf")  # a query is not its own result
    expected = torch.sort(d, dim=1, stable=True).indices[:, :5].numpy()
    assert np.array_equal(got, expected)


def test_query_gallery_mode_uses_the_gallery_images(tmp_path, digits, digit_embeddings, png_size):
    emb, labels = digit_embeddings
    q, g = emb[:100], emb[100:]
    seen = []

    def gallery_image(j):
        seen.append(j)
        return raw_image(digits, 100 + j)

    fig = retrieval_grid_figure(
        q,
        labels[:100],
        lambda i: raw_image(digits, i),
        g,
        labels[100:],
        gallery_image,
        n_queries=3,
        top_k=4,
    )
    assert png_size(save_png(fig, tmp_path / "qg.png")) == grid_pixels(3, 4)
    assert len(seen) == 12 and max(seen) < len(g)


def test_queries_are_only_those_with_a_same_class_item():
    labels = np.array([0, 0, 1, 2, 2, 3])
    assert set(choose_queries(labels, None, 10)) == {0, 1, 3, 4}
    assert set(choose_queries(labels[:3], np.array([1, 5]), 10)) == {2}
    with pytest.raises(ValueError, match="same-class"):
        choose_queries(np.array([0, 1, 2]), None, 4)
