import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.cluster import KMeans
from sklearn.metrics import normalized_mutual_info_score
from threadpoolctl import threadpool_limits

from dml.metrics import clustering_metrics
from dml.metrics.clustering import (
    default_restarts,
    greedy_trials,
    kmeans_assign,
    kmeans_pp,
    nmi_score,
    pairwise_f1,
)
from tests.metrics.conftest import clustered


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


# ---- k-means++ seeding, the restarts policy, k-means itself ------------------------------------


def seeding_distribution(points: np.ndarray, trials: int) -> np.ndarray:
    """Exact P(first centre, second centre) of k-means++ with `trials` D^2-drawn candidates for
    the second centre, the one leaving the least summed squared distance kept (ties: the first
    drawn), by enumerating the candidate tuples."""
    n = len(points)
    out = np.zeros((n, n))
    for first in range(n):
        d2 = ((points - points[first]) ** 2).sum(1)
        p = d2 / d2.sum()
        for cands in itertools.product(range(n), repeat=trials):
            potentials = [np.minimum(d2, ((points - points[j]) ** 2).sum(1)).sum() for j in cands]
            out[first, cands[int(np.argmin(potentials))]] += np.prod(p[list(cands)]) / n
    return out


@pytest.mark.parametrize("trials", [1, 2, None])  # plain, greedy, greedy_trials(2) = 2
@pytest.mark.parametrize("positions", [[0, 0, 1, 3], [0, 0, 0, 3]])
def test_seeding_draws_centres_by_squared_distance(positions, trials):
    """Over 2000 seeds the (first, second) centre pairs follow k-means++'s law: the first
    uniform, the second of `trials` candidates drawn with probability D^2 / sum D^2. Tiny
    coordinates (every D^2 well under 1) and duplicate rows (D^2 = 0, never drawn) included."""
    x = np.zeros((len(positions), 3), dtype=np.float32)
    x[:, 0] = np.array(positions, dtype=np.float32) / 10
    want = seeding_distribution(x.astype(np.float64), trials or 2) * 2000
    got = np.zeros_like(want)
    for s in range(2000):
        first, second = kmeans_pp(x, 2, np.random.default_rng(s), trials=trials)
        got[first, second] += 1
    # 5 standard deviations of a binomial count (the largest seen with these seeds: 2.8)
    assert (np.abs(got - want) <= 5 * np.sqrt(want * (1 - want / 2000)) + 1e-9).all()


def test_greedy_trials_is_scikit_learns():
    # scikit-learn's k-means++: 2 + int(ln k) candidates per centre
    assert [greedy_trials(k) for k in (2, 3, 8, 20, 11316)] == [2, 3, 4, 4, 11]


def test_collapsed_embeddings_cluster_without_error():
    # an untrained or collapsed model: every embedding the same point. The seeding then draws
    # any rows, k-means puts everything in one cluster: NMI 0, F1 of "all pairs are same-class"
    out = clustering_metrics(np.ones((6, 4)), [0, 0, 0, 1, 1, 1])
    assert out == {"nmi": 0.0, "f1": pytest.approx(2 * 0.4 / 1.4)}  # precision 6/15, recall 1
    centres = kmeans_pp(np.ones((6, 4), np.float32), 4, np.random.default_rng(0))
    assert centres.shape == (4,) and ((0 <= centres) & (centres < 6)).all()


def test_two_classes_are_clustered():
    x = np.repeat(np.eye(2, 4, dtype=np.float32), 3, axis=0)
    assert clustering_metrics(x, [5, 5, 5, 7, 7, 7]) == pytest.approx({"nmi": 1.0, "f1": 1.0})


def test_kmeans_result_is_a_lloyd_fixed_point_of_all_points():
    """k-means runs on every point (faiss would train on a 256-per-centroid subsample by
    default): each point ends nearest to the mean of its own cluster."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, 2)).astype(np.float32)
    x[:1500] += 1.0  # two overlapping blobs cut into 3 clusters: no trivial answer
    assign = kmeans_assign(x, 3, seed=0)
    means = np.stack([x[assign == j].astype(np.float64).mean(0) for j in range(3)])
    nearest = ((x[:, None] - means[None]) ** 2).sum(-1).argmin(1)
    assert np.array_equal(nearest, assign)


@pytest.mark.parametrize(
    ("restarts", "dim", "calls", "trials", "projected"),
    [
        (0, 100, 1, 1, True),
        (0, 64, 1, 1, False),
        (0, 8, 1, 1, False),
        (1, 100, 1, None, False),
        (3, 8, 3, None, False),
    ],
)
def test_seeding_policy(monkeypatch, restarts, dim, calls, trials, projected):
    """restarts=0 (SOP scale): one plain k-means++ seeding (trials=1) on the top 64 principal
    components when D > 64, else on the data itself; restarts=r: r greedy seedings on the data.
    clustering_metrics passes restarts through."""
    import sys

    from dml.metrics.clustering import principal_components

    module = sys.modules["dml.metrics.clustering"]
    seen = []
    real = module.kmeans_pp

    def spy(z, num_clusters, rng, trials=None):
        seen.append((z.copy(), trials))
        return real(z, num_clusters, rng, trials)

    monkeypatch.setattr(module, "kmeans_pp", spy)
    x, labels = clustered(120, dim, 4, noise=0.05, seed=26)
    out = clustering_metrics(x, labels, restarts=restarts)
    assert [t for _, t in seen] == [trials] * calls
    want = principal_components(x, 64) if projected else x
    assert all(np.array_equal(z, want) for z, _ in seen)
    assert out == pytest.approx({"nmi": 1.0, "f1": 1.0})


def test_default_restarts_fit_the_seeding_budget():
    from dml.metrics.clustering import MAX_RESTARTS, SEEDING_BUDGET

    for n, k, d in [(1000, 20, 128), (4371, 100, 512), (12000, 100, 512), (60502, 11316, 512)]:
        r = default_restarts(n, k, d)
        one = n * k * d * greedy_trials(k)  # multiply-adds of one greedy seeding
        assert 0 <= r <= MAX_RESTARTS and r * one <= SEEDING_BUDGET
        assert r == MAX_RESTARTS or (r + 1) * one > SEEDING_BUDGET
    assert 0 < default_restarts(12000, 100, 512) < MAX_RESTARTS  # some restarts, not all


@pytest.mark.parametrize("scale", [1.0, 0.01])
@pytest.mark.parametrize("n", [300, 5])
def test_principal_components_scale_with_the_data(n, scale):
    # variances below 1 too (scale 0.01): the projection is linear in the data
    from dml.metrics.clustering import principal_components

    rng = np.random.default_rng(1)
    x = (rng.normal(size=(n, 6)) * [9.0, 5.0, 3.0, 2.0, 1.0, 0.5] + 4.0).astype(np.float32)
    a, b = principal_components(x, 3), principal_components(x * np.float32(scale), 3)
    signs = np.sign((a * b).sum(0))
    np.testing.assert_allclose(b * signs, a * scale, rtol=1e-3, atol=1e-3 * scale)


@settings(max_examples=60, deadline=None)
@given(
    labels=st.lists(st.integers(0, 5), min_size=1, max_size=30),
    data=st.data(),
)
def test_nmi_and_f1_equal_their_references_for_any_partition(labels, data):
    """Any two partitions: more or fewer clusters than classes, unused cluster ids (gaps), a
    single class or a single cluster."""
    labels = np.array(labels)
    clusters = np.array(
        data.draw(st.lists(st.integers(0, 7), min_size=len(labels), max_size=len(labels)))
    )
    assert nmi_score(labels, clusters) == pytest.approx(
        normalized_mutual_info_score(labels, clusters), abs=1e-12
    )
    assert pairwise_f1(labels, clusters) == pytest.approx(
        brute_force_pair_f1(labels, clusters), abs=1e-12
    )
