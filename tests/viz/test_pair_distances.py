import numpy as np
import torch

from dml.distances import pairwise_distance
from dml.viz.figures import save_png
from dml.viz.histograms import bin_edges
from dml.viz.pair_distances import pair_distance_counts, pair_distance_figure


def test_every_pair_once_split_by_class(digit_embeddings):
    emb, labels = digit_embeddings
    e, lab = emb[:200], labels[:200]
    counts = pair_distance_counts(e, lab, bins=40)
    d = pairwise_distance(e).numpy()
    same = (lab[:, None] == lab[None, :]).numpy()
    iu = np.triu_indices(200, 1)
    pos = np.histogram(d[iu][same[iu]], bins=bin_edges(40))[0]
    neg = np.histogram(d[iu][~same[iu]], bins=bin_edges(40))[0]
    assert counts["positive pairs"].sum() + counts["negative pairs"].sum() == 200 * 199 // 2
    assert np.abs(counts["positive pairs"] - pos).sum() <= 2  # float32 edge cases only
    assert np.abs(counts["negative pairs"] - neg).sum() <= 2


def test_query_gallery_counts_and_subsample(tmp_path, digit_embeddings, png_size):
    emb, labels = digit_embeddings
    counts = pair_distance_counts(emb[:100], labels[:100], emb[100:], labels[100:], max_points=50)
    assert sum(c.sum() for c in counts.values()) == 50 * 50
    # same-class pairs are closer on average than other-class pairs
    centres = (bin_edges()[:-1] + bin_edges()[1:]) / 2
    mean = {k: (c * centres).sum() / c.sum() for k, c in counts.items()}
    assert mean["positive pairs"] < mean["negative pairs"]
    assert png_size(save_png(pair_distance_figure(counts), tmp_path / "h.png")) == (700, 400)
    assert torch.is_tensor(emb)
