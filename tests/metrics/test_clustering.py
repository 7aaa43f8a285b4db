import itertools

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.metrics import normalized_mutual_info_score
from threadpoolctl import threadpool_limits

from dml.metrics import clustering_metrics
from dml.metrics.clustering import (
    default_restarts,
    kmeans_assign,
    kmeans_pp,
    nmi_score,
    pairwise_f1,
)


def brute_force_pair_f1(labels, clusters) -> float:
    tp = fp = fn = 0
    for i, j in itertools.combinations(range(len(labels)), 2):
        same_class, same_cluster = labels[i] == labels[j], clusters[i] == clusters[j]
        tp += same_class and same_cluster
        fp += same_cluster and not same_class
        fn += same_class and not same_cluster
    return 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)


@pytest.mark.parametrize("seed", range(5))
def test_nmi_and_f1_match_references(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 150))
    labels = rng.integers(0, int(rng.integers(2, 12)), n)
    clusters = np.where(rng.random(n) < 0.6, labels, rng.integers(0, 9, n))
    assert nmi_score(labels, clusters) == pytest.approx(
        normalized_mutual_info_score(labels, clusters), abs=1e-12
    )
    assert pairwise_f1(labels, clusters) == pytest.approx(
        brute_force_pair_f1(labels, clusters), abs=1e-12
    )


def test_hand_computed_f1_and_edge_cases():
    labels = np.array([0, 0, 0, 1, 1])
    clusters = np.array([0, 0, 1, 1, 1])
    # same-class pairs: 3 + 1 = 4; same-cluster pairs: 1 + 3 = 4; both: (0,1) and (3,4) = 2
    assert pairwise_f1(labels, clusters) == pytest.approx(0.5)
    assert nmi_score(labels, labels) == pytest.approx(1.0)
    assert pairwise_f1(labels, labels) == pytest.approx(1.0)
    assert pairwise_f1(labels, np.arange(5)) == 0.0  # all singletons: no predicted pair
    assert nmi_score(labels, np.zeros(5, dtype=np.int64)) == 0.0


def test_clustering_metrics_uses_one_assignment_and_is_deterministic(ref):
    x, labels = ref.clustered(400, 16, 8, noise=0.9, seed=21)
    clusters = kmeans_assign(x, 8, seed=0)
    out = clustering_metrics(x, labels)
    assert out["nmi"] == pytest.approx(normalized_mutual_info_score(labels, clusters), abs=1e-12)
    assert out["f1"] == pytest.approx(brute_force_pair_f1(labels, clusters), abs=1e-12)
    assert clustering_metrics(x, labels) == out
    assert clustering_metrics(x, labels, seed=3) == clustering_metrics(x, labels, seed=3)
    assert 0.2 < out["nmi"] < 1.0


@pytest.mark.parametrize(
    ("n", "dim", "classes", "seed"), [(200, 32, 5, 22), (300, 8, 12, 23), (1000, 64, 40, 24)]
)
def test_separated_classes_cluster_perfectly(ref, n, dim, classes, seed):
    # the production call: random-row seeding merged two of these classes in most runs
    x, labels = ref.clustered(n, dim, classes, noise=0.01, seed=seed)
    assert clustering_metrics(x, labels + 10) == pytest.approx({"nmi": 1.0, "f1": 1.0})


def test_the_large_problem_path_separates_classes_too(ref):
    # restarts=0 is what default_restarts gives at SOP scale: one plain k-means++ run seeded on
    # principal components (dim 128 > SEEDING_DIM, so the projection is used)
    assert default_restarts(60502, 11316, 512) == 0
    assert default_restarts(1000, 20, 128) == 10
    x, labels = ref.clustered(600, 128, 30, noise=0.01, seed=25)
    clusters = kmeans_assign(x, 30, restarts=0)
    assert nmi_score(labels, clusters) == pytest.approx(1.0)
    assert np.array_equal(kmeans_assign(x, 30, restarts=0), clusters)


@pytest.mark.parametrize(
    ("n", "dim", "classes", "noise", "seed"),
    [(400, 16, 8, 0.9, 21), (1000, 32, 20, 1.0, 1), (2000, 64, 50, 1.5, 2), (1500, 32, 30, 1.0, 5)],
)
def test_nmi_is_as_good_as_scikit_learn_kmeans(ref, n, dim, classes, noise, seed):
    # the reference: scikit-learn's KMeans, 10 greedy k-means++ initialisations. Two runs with
    # equal objectives can still differ by 0.01 in NMI, so both sides average three seeds.
    x, labels = ref.clustered(n, dim, classes, noise=noise, seed=seed)
    with threadpool_limits(1):  # sklearn's threads only slow a small problem down
        reference = np.mean(
            [
                normalized_mutual_info_score(
                    labels, KMeans(classes, n_init=10, random_state=s).fit_predict(x)
                )
                for s in range(3)
            ]
        )
    ours = np.mean([clustering_metrics(x, labels, seed=s)["nmi"] for s in range(3)])
    assert ours == pytest.approx(reference, abs=0.01)


def test_seeding_picks_one_row_per_far_apart_group():
    # four tight pairs far apart: D^2 sampling puts one centre in each pair, never two in one
    x = np.array(
        [[0, 0], [0, 0.01], [10, 0], [10, 0.01], [0, 10], [0.01, 10], [10, 10], [10, 9.99]]
    )
    for s in range(20):
        x32 = x.astype(np.float32)
        centres = x32[kmeans_pp(x32, 4, np.random.default_rng(s), trials=1 + s % 2)]
        assert sorted({(round(c[0] / 10), round(c[1] / 10)) for c in centres}) == [
            (0, 0),
            (0, 1),
            (1, 0),
            (1, 1),
        ]


@pytest.mark.parametrize(
    ("emb", "labels", "message"),
    [
        (
            np.ones((4, 2)),
            [3, 3, 3, 3],
            r"^labels hold a single class \(3\): clustering metrics need",
        ),
        (np.full((4, 2), np.nan), [0, 0, 1, 1], "NaN or inf"),
        (np.ones((4, 2)), [0, 1], "2 labels but there are 4"),
        (np.ones((0, 2)), [], "empty"),
    ],
)
def test_bad_input_is_a_clear_error(emb, labels, message):
    with pytest.raises(ValueError, match=message):
        clustering_metrics(emb, labels)


@pytest.mark.parametrize("n", [300, 5])  # more points than dimensions, and fewer (raw pixels)
def test_principal_components_match_an_svd_projection(n):
    from dml.metrics.clustering import principal_components

    rng = np.random.default_rng(0)
    # anisotropic cloud off the origin: distinct variances, so each axis is defined up to sign
    x = (rng.normal(size=(n, 6)) * [9.0, 5.0, 3.0, 2.0, 1.0, 0.5] + 4.0).astype(np.float32)
    got = principal_components(x, 3)
    centred = x.astype(np.float64) - x.astype(np.float64).mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    want = centred @ vt[:3].T
    assert got.dtype == np.float32 and got.shape == (n, 3)
    signs = np.sign((got * want).sum(0))
    np.testing.assert_allclose(got * signs, want, rtol=1e-4, atol=1e-3)
