"""The k-means behind clustering_metrics, stated as properties and against from-the-definition
references: the greedy k-means++ seeding, Lloyd's step from those seeds, restarts, the large-problem
path (plain k-means++ on principal components), and the NMI / pairwise F1 edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import normalized_mutual_info_score
from threadpoolctl import threadpool_limits

from dml.metrics import clustering_metrics
from dml.metrics.clustering import (
    MAX_RESTARTS,
    SEEDING_BUDGET,
    SEEDING_DIM,
    default_restarts,
    greedy_trials,
    kmeans_assign,
    kmeans_pp,
    nmi_score,
    pairwise_f1,
    principal_components,
)


def reference_kmeans_pp(x: np.ndarray, k: int, rng: np.random.Generator, trials: int | None):
    """Greedy k-means++ from its definition, float64, one candidate at a time: the first centre
    uniform; then `trials` candidates, each the first row whose running sum of D^2 exceeds a
    uniform draw in [0, total) (uniform rows when every D^2 is 0), and of those the one leaving
    the smallest summed D^2 (the first on a tie)."""
    x = x.astype(np.float64)
    n = len(x)
    trials = 2 + int(math.log(k)) if trials is None else trials

    def d2(i: int) -> np.ndarray:
        return ((x - x[i]) ** 2).sum(axis=1)

    chosen = [int(rng.integers(n))]
    nearest = d2(chosen[0])
    for _ in range(1, k):
        total = nearest.sum()
        if total <= 0:
            candidates = [int(c) for c in rng.integers(n, size=trials)]
        else:
            running = np.cumsum(nearest)
            candidates = [int(np.argmax(running > u)) for u in rng.random(trials) * total]
        potentials = [np.minimum(nearest, d2(c)).sum() for c in candidates]
        best = candidates[int(np.argmin(potentials))]
        chosen.append(best)
        nearest = np.minimum(nearest, d2(best))
    return chosen


def integer_points(n: int, dim: int, seed: int, distinct: int | None = None) -> np.ndarray:
    """float32 points with small integer coordinates: every squared distance the seeding forms is
    exact in float32, so it must pick the very rows the float64 reference picks. With `distinct`,
    the rows are copies of that many points (exact duplicates)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 16, size=(n if distinct is None else distinct, dim))
    if distinct is not None:
        x = x[rng.integers(0, distinct, n)]
    return x.astype(np.float32)


@pytest.mark.parametrize("trials", [1, 2, 3, None])
def test_seeding_matches_the_greedy_kmeans_pp_reference(trials):
    for seed in range(6):
        x = integer_points(40, 3, seed)
        got = kmeans_pp(x, 6, np.random.default_rng(seed), trials)
        assert got.tolist() == reference_kmeans_pp(x, 6, np.random.default_rng(seed), trials)
        # D^2 sampling is scale-free: the same rows for the set scaled by 1/64 (exact in float32),
        # where every squared distance and their total are below 1
        small = kmeans_pp(x / 64, 6, np.random.default_rng(seed), trials)
        assert small.tolist() == got.tolist()


@pytest.mark.parametrize("trials", [1, 2, None])
def test_seeding_with_duplicates_and_more_centres_than_points(trials):
    for seed in range(8):
        # many exact duplicates, 5 distinct points for 4 centres, then for 7 (more than exist)
        x = integer_points(30, 2, seed, distinct=5)
        for k in (4, 7):
            got = kmeans_pp(x, k, np.random.default_rng(seed), trials)
            assert got.tolist() == reference_kmeans_pp(x, k, np.random.default_rng(seed), trials)
            assert got.shape == (k,) and got.min() >= 0 and got.max() < len(x)
            places = {tuple(p) for p in x[got]}
            # a second centre on an occupied place only once every distinct place has one
            assert len(places) == min(k, len({tuple(p) for p in x}))


@pytest.mark.parametrize("trials", [1, 2, None])
def test_seeding_never_stacks_centres_while_a_free_point_is_left(trials):
    # one lone point, first or last row, among copies of another: every seed must pick both places
    for lone_last in (False, True):
        x = np.zeros((9, 2), dtype=np.float32)
        x[-1 if lone_last else 0] = [3, 4]
        for seed in range(10):
            got = kmeans_pp(x, 2, np.random.default_rng(seed), trials)
            assert {tuple(p) for p in x[got]} == {(0.0, 0.0), (3.0, 4.0)}


def test_greedy_trials_is_two_plus_log_k():
    # Arthur & Vassilvitskii's (and scikit-learn's) candidates per centre: 2 + floor(ln k)
    for k in (1, 2, 7, 8, 20, 21, 11316):
        assert greedy_trials(k) == 2 + math.floor(math.log(k))


def test_default_restarts_is_the_most_that_fit_the_seeding_budget():
    sizes = [
        (100, 5, 8),
        (1000, 20, 128),
        (10000, 100, 512),
        (20000, 500, 512),
        (60502, 11316, 512),
    ]
    for n, k, d in sizes:
        one_seeding = n * k * d * (2 + math.floor(math.log(k)))
        r = default_restarts(n, k, d)
        assert 0 <= r <= MAX_RESTARTS
        assert r * one_seeding <= SEEDING_BUDGET
        assert r == MAX_RESTARTS or (r + 1) * one_seeding > SEEDING_BUDGET
    # the sizes reach both ends and the middle: 10000 x 100 x 512 fits 6 seedings, not 7
    assert [default_restarts(*size) for size in sizes] == [10, 10, 6, 0, 0]


def lloyd_step(x: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """One Lloyd iteration from `centres` (assign to the nearest, move each centre to its points'
    mean), then the assignment to the moved centres; float64."""
    x = x.astype(np.float64)

    def nearest(c: np.ndarray) -> np.ndarray:
        return ((x[:, None, :] - c[None, :, :]) ** 2).sum(axis=2).argmin(axis=1)

    first = nearest(centres.astype(np.float64))
    moved = np.stack([x[first == j].mean(axis=0) for j in range(len(centres))])
    return nearest(moved)


def blobs(n: int, dim: int, k: int, spread: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, dim))
    return (centres[rng.integers(0, k, n)] + spread * rng.normal(size=(n, dim))).astype(np.float32)


@pytest.mark.parametrize("seed", range(3))
def test_kmeans_is_lloyd_from_the_seeding(seed):
    # 1300 points, 5 clusters (more than 256 per centre: faiss would subsample by default, but every
    # point counts), dim 160 > SEEDING_DIM (restarts=0 seeds on the top 64 principal components,
    # which here pick other rows than the full vectors would). The seedings run on one BLAS
    # thread, as in kmeans_assign, so their float32 products round the same.
    x = blobs(1300, 160, 5, 1.2, seed)
    assert x.shape[1] > SEEDING_DIM
    with threadpool_limits(limits=1, user_api="blas"):
        greedy = x[kmeans_pp(x, 5, np.random.default_rng(seed))]
        pcs = principal_components(x, SEEDING_DIM)
        plain = x[kmeans_pp(pcs, 5, np.random.default_rng(seed), trials=1)]
    got = kmeans_assign(x, 5, seed=seed, restarts=1, niter=1)
    assert np.array_equal(got, lloyd_step(x, greedy))
    assert np.array_equal(kmeans_assign(x, 5, seed=seed, restarts=0, niter=1), lloyd_step(x, plain))


def test_kmeans_result_is_a_lloyd_fixed_point_and_deterministic():
    x = blobs(500, 8, 6, 0.3, 7)
    got = kmeans_assign(x, 6)
    assert got.dtype == np.int64 and got.shape == (500,) and set(got.tolist()) == set(range(6))
    means = np.stack([x[got == j].astype(np.float64).mean(axis=0) for j in range(6)])
    d2 = ((x[:, None, :].astype(np.float64) - means[None]) ** 2).sum(axis=2)
    assert np.array_equal(d2.argmin(axis=1), got)  # each point sits with its nearest centre
    assert np.array_equal(kmeans_assign(x, 6, seed=0), got)  # the default seed is 0
    assert np.array_equal(kmeans_assign(x, 6, seed=0), got)


def inertia(x: np.ndarray, assign: np.ndarray) -> float:
    x = x.astype(np.float64)
    return float(
        sum(((x[assign == j] - x[assign == j].mean(axis=0)) ** 2).sum() for j in set(assign))
    )


def test_more_restarts_never_raise_the_objective():
    # restarts share one random stream: r + 1 restarts run the r runs of r restarts plus one more,
    # and the lowest objective is kept
    x = blobs(400, 4, 12, 0.6, 3)
    objectives = [inertia(x, kmeans_assign(x, 12, seed=1, restarts=r)) for r in (1, 2, 4, 8)]
    assert (np.diff(objectives) <= 1e-6 * objectives[0]).all()
    assert objectives[-1] < objectives[0]  # this set has a worse local optimum to escape


def test_kmeans_prints_nothing(capfd):
    # faiss warns on stderr for fewer than 39 (its default) points per centre, and verbose prints
    # every iteration: a metrics call in a training loop must stay quiet
    x = blobs(50, 4, 30, 0.5, 1)
    kmeans_assign(x, 30, restarts=2)
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_nmi_of_one_class_and_one_or_more_clusters():
    one = np.zeros(6, dtype=np.int64)
    assert nmi_score(one, one) == 1.0  # identical partitions
    several = np.array([0, 0, 1, 1, 2, 2])
    assert nmi_score(one, several) == pytest.approx(normalized_mutual_info_score(one, several))
    assert nmi_score(one, several) == 0.0
    assert nmi_score(several, one) == 0.0


@pytest.mark.parametrize("seed", range(4))
def test_scores_do_not_depend_on_the_cluster_ids(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, 80)
    clusters = np.where(rng.random(80) < 0.5, labels // 3, rng.integers(0, 4, 80))  # few clusters
    ids = rng.permutation(40)[:4] * 5  # an injective relabelling onto sparse ids (gaps)
    for scorer in (nmi_score, pairwise_f1):
        assert scorer(labels, ids[clusters]) == pytest.approx(scorer(labels, clusters), abs=1e-12)
        assert scorer(ids[labels // 3], clusters) == pytest.approx(
            scorer(labels // 3, clusters), abs=1e-12
        )
    # more classes than clusters (and the other way round) against scikit-learn
    assert nmi_score(labels, clusters) == pytest.approx(
        normalized_mutual_info_score(labels, clusters), abs=1e-12
    )
    assert nmi_score(clusters, labels) == pytest.approx(
        normalized_mutual_info_score(clusters, labels), abs=1e-12
    )


def test_two_separated_classes_score_one():
    x = np.concatenate([blobs(30, 4, 1, 0.01, 1), blobs(30, 4, 1, 0.01, 2) + 5])
    labels = np.repeat(["b", "a"], 30)
    assert clustering_metrics(x, labels) == pytest.approx({"nmi": 1.0, "f1": 1.0})


def test_clustering_metrics_passes_seed_and_restarts_to_kmeans():
    x = blobs(300, 4, 12, 0.6, 3)
    labels = np.random.default_rng(0).integers(0, 12, 300)
    one_run = kmeans_assign(x, 12, seed=2, restarts=1)
    assert not np.array_equal(one_run, kmeans_assign(x, 12, seed=2))  # restarts matter here
    want = {"nmi": nmi_score(labels, one_run), "f1": pairwise_f1(labels, one_run)}
    assert clustering_metrics(x, labels, seed=2, restarts=1) == want


@pytest.mark.parametrize(
    ("emb", "labels", "message"),
    [
        (None, [0, 1], "embeddings is None"),
        (np.ones((4, 2)), None, "labels is None"),
        (np.ones((4, 2)), [0, 1], "labels has 2 labels but there are 4"),
        # one row: a single class too, named by its label
        (
            np.ones((1, 2)),
            ["cat"],
            r"single class \(.*'cat'.*\): clustering metrics need at least two",
        ),
    ],
    ids=["embeddings-none", "labels-none", "labels-length", "single-row"],
)
def test_errors_name_the_argument(emb, labels, message):
    with pytest.raises(ValueError, match=message):
        clustering_metrics(emb, labels)


def test_principal_components_from_the_gram_matrix_equal_the_covariance_path():
    # 5 points in 6-D take the N x N path; the same rows twice (10 >= 6) take the D x D one, with
    # the same mean and axes. Small coordinates: the squared singular values are below 1.
    rng = np.random.default_rng(4)
    x = (rng.normal(size=(5, 6)) * [9.0, 5.0, 3.0, 2.0, 1.0, 0.5] * 1e-3 + 0.01).astype(np.float32)
    gram = principal_components(x, 3)
    covariance = principal_components(np.concatenate([x, x]), 3)[:5]
    signs = np.sign((gram * covariance).sum(axis=0))
    np.testing.assert_allclose(gram * signs, covariance, rtol=1e-3, atol=1e-7)
    centred = x.astype(np.float64) - x.astype(np.float64).mean(axis=0)
    d2 = ((centred[:, None] - centred[None]) ** 2).sum(axis=2)
    full = principal_components(x, 5)  # rank 4 (centred): all of the distances
    np.testing.assert_allclose(
        ((full[:, None] - full[None]) ** 2).sum(axis=2), d2, rtol=1e-3, atol=1e-12
    )
