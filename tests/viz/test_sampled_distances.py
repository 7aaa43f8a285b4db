import numpy as np
import torch

from dml.viz.figures import save_png
from dml.viz.histograms import DistanceHistograms, bin_edges
from dml.viz.sampled_distances import sampled_distances_figure, sphere_density


def test_sphere_density_matches_random_points_on_the_sphere(rng):
    dim = 32
    x = torch.nn.functional.normalize(torch.as_tensor(rng.standard_normal((2000, dim))), dim=1)
    d = (x[:1000] - x[1000:]).norm(dim=1).numpy()
    edges = bin_edges(50)
    q = sphere_density(edges, dim)
    assert np.isclose((q * np.diff(edges)).sum(), 1.0)
    centres = (edges[:-1] + edges[1:]) / 2
    assert abs((q * np.diff(edges) * centres).sum() - d.mean()) < 0.02  # same mean, ~sqrt(2)


def test_figure_of_picked_and_batch_histograms(tmp_path, png_size, rng):
    picked, batch = DistanceHistograms(), DistanceHistograms()
    for kind, centre in (("positive", 0.5), ("negative", 1.1)):
        picked.add(kind, torch.as_tensor(rng.normal(centre, 0.1, 300)))
        batch.add(kind, torch.as_tensor(rng.normal(centre + 0.1, 0.2, 900)))
    fig = sampled_distances_figure(
        picked.counts(),
        batch.counts(),
        {"positive": "all", "negative": "distance_weighted"},
        dim=64,
    )
    labels = [t.get_text() for ax in fig.axes for t in ax.get_legend().get_texts()]
    assert "picked negatives (distance_weighted) (n=300)" in labels
    assert "uniform on the sphere (D=64)" in labels
    assert png_size(save_png(fig, tmp_path / "s.png")) == (1000, 400)
