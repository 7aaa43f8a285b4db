import itertools

import numpy as np
import pytest
from sklearn.metrics import normalized_mutual_info_score

from dml.metrics import clustering_metrics
from dml.metrics.clustering import kmeans_assign, nmi_score, pairwise_f1


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
    assert 0.2 < out["nmi"] < 1.0


def test_separated_classes_cluster_perfectly(ref):
    x, labels = ref.clustered(200, 32, 5, noise=0.01, seed=22)
    # random initial centroids can merge two classes; the best of several runs does not
    assert clustering_metrics(x, labels + 10, nredo=10) == pytest.approx({"nmi": 1.0, "f1": 1.0})


@pytest.mark.parametrize(
    ("emb", "labels", "message"),
    [
        (np.ones((4, 2)), [3, 3, 3, 3], "single class"),
        (np.full((4, 2), np.nan), [0, 0, 1, 1], "NaN or inf"),
        (np.ones((4, 2)), [0, 1], "2 labels but there are 4"),
        (np.ones((0, 2)), [], "empty"),
    ],
)
def test_bad_input_is_a_clear_error(emb, labels, message):
    with pytest.raises(ValueError, match=message):
        clustering_metrics(emb, labels)
