import numpy as np
import pytest
import torch

from dml.metrics import retrieval_metrics


def assert_same(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    for key, value in want.items():
        assert got[key] == pytest.approx(value, abs=1e-12), key


@pytest.mark.parametrize("backend", ["torch", "faiss"])
@pytest.mark.parametrize("chunk", [None, 9])
def test_self_retrieval_matches_reference_with_ties(ref, backend, chunk):
    x, labels = ref.grid(260, 12, seed=11)
    labels[0] = 99  # a class of one: left out and counted
    ks = (1, 2, 4, 8, 100)  # 100 is deeper than the kNN lists
    got = retrieval_metrics(x, labels, ks=ks, backend=backend, chunk_size=chunk)
    want = ref.retrieval(x, labels, ks=ks)
    assert want["queries_without_positive"] == 1
    assert_same(got, want)


@pytest.mark.parametrize("backend", ["torch", "faiss"])
def test_query_gallery_matches_reference_with_ties(ref, backend):
    x, labels = ref.grid(300, 15, seed=12)
    q, ql, g, gl = x[:120], labels[:120], x[120:], labels[120:]
    ql = ql.copy()
    ql[:3] = 1000  # not in the gallery
    ks = (1, 10, 20, 30, 40, 50)
    got = retrieval_metrics(q, ql, g, gl, ks=ks, backend=backend, chunk_size=32)
    want = ref.retrieval(q, ql, g, gl, ks=ks)
    assert want["queries_without_positive"] == 3
    assert_same(got, want)


def test_continuous_data_with_duplicates_matches_reference(ref):
    x, labels = ref.clustered(400, 32, 40, noise=0.8, seed=13)
    x[300:320] = x[5]  # copies across classes
    ks = (1, 2, 4, 8, 16, 128)
    assert_same(retrieval_metrics(x, labels, ks=ks, chunk_size=64), ref.retrieval(x, labels, ks=ks))


def test_result_is_stable_across_backends_tiles_and_input_types(ref):
    x, labels = ref.grid(200, 7, seed=14)
    runs = [
        retrieval_metrics(x, labels, backend="torch"),
        retrieval_metrics(x, labels, backend="torch", chunk_size=13),
        retrieval_metrics(x, labels, backend="faiss", chunk_size=7),
        retrieval_metrics(torch.from_numpy(x).requires_grad_(), torch.from_numpy(labels)),
        retrieval_metrics(x.astype(np.float64), [str(v) for v in labels]),
    ]
    for other in runs[1:]:
        assert other == runs[0]
    assert all(
        isinstance(v, float) for k, v in runs[0].items() if not k.startswith(("num", "queries"))
    )


def test_unnormalised_inputs_rank_by_cosine(ref):
    x, labels = ref.clustered(150, 8, 6, noise=0.7, seed=15)
    scale = np.random.default_rng(0).uniform(0.1, 10, size=(150, 1)).astype(np.float32)
    assert retrieval_metrics(x * scale, labels) == pytest.approx(retrieval_metrics(x, labels))


def test_perfect_and_known_small_case():
    # 1-D-like layout on a circle: classes a a b b, hand-checked ranking
    ang = np.array([0.0, 0.1, 1.0, 1.15])
    x = np.stack([np.cos(ang), np.sin(ang)], 1).astype(np.float32)
    out = retrieval_metrics(x, [0, 0, 1, 1], ks=(1, 2))
    assert out["recall@1"] == 1.0 and out["map@r"] == 1.0 and out["r_precision"] == 1.0
    # query 1 (angle .1) vs gallery [0, 1.0, 0.05 class b]: nearest is the class-b item
    q = x[1:2]
    g = np.stack([np.cos([0.0, 1.0, 0.13]), np.sin([0.0, 1.0, 0.13])], 1).astype(np.float32)
    out = retrieval_metrics(q, [0], g, [0, 1, 1], ks=(1, 2))
    assert out["recall@1"] == 0.0 and out["recall@2"] == 1.0
    assert out["map@r"] == 0.0 and out["r_precision"] == 0.0  # R = 1, rank 2


@pytest.mark.parametrize("self_mode", [True, False])
def test_agrees_with_pytorch_metric_learning(ref, self_mode):
    from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator

    x, labels = ref.clustered(600, 32, 30, noise=0.9, seed=16)
    calc = AccuracyCalculator(
        include=("precision_at_1", "r_precision", "mean_average_precision_at_r"),
        k="max_bin_count",
    )
    if self_mode:
        labels[:2] = [500, 501]  # lone queries: PML leaves them out as well
        pml = calc.get_accuracy(torch.from_numpy(x), torch.from_numpy(labels))
        ours = retrieval_metrics(x, labels, ks=(1,))
        assert ours["queries_without_positive"] == 2
    else:
        q, ql, g, gl = x[:250], labels[:250], x[250:], labels[250:]
        pml = calc.get_accuracy(*map(torch.from_numpy, (q, ql, g, gl)))
        ours = retrieval_metrics(q, ql, g, gl, ks=(1,))
    assert 0.2 < ours["map@r"] < 0.9  # a non-trivial case
    assert ours["recall@1"] == pytest.approx(pml["precision_at_1"], abs=1e-9)
    assert ours["r_precision"] == pytest.approx(pml["r_precision"], abs=1e-9)
    assert ours["map@r"] == pytest.approx(pml["mean_average_precision_at_r"], abs=1e-9)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"query": np.full((4, 3), np.nan)}, "NaN or inf"),
        ({"query": np.array([[1.0, 0.0], [np.inf, 0.0], [0.0, 1.0], [0.0, 1.0]])}, "row 1"),
        ({"query_labels": [0, 1, 0]}, "3 labels but there are 4 embeddings"),
        ({"query_labels": [[0, 1], [0, 1]]}, "must be 1-D"),
        ({"query_labels": [0, 0, 0, 0]}, r"^the gallery has a single class \(label 0\): retrieval"),
        ({"query": np.zeros((0, 3)), "query_labels": []}, "empty"),
        ({"query": np.ones(4)}, "2-D"),
        ({"query": np.ones((4, 2, 2))}, "2-D"),
        ({"query": np.array([[1.0, 0], [0, 0], [0, 1], [1, 1]])}, "all-zero row"),
        (
            {"query_labels": [0, 1, 2, 3]},
            "^no query has a same-class item in the gallery: check that query and gallery labels "
            "use the same class ids",
        ),
        ({"ks": [0, 1]}, "positive integers"),
        ({"ks": []}, "positive integers"),
        ({"ks": ["a"]}, "positive integers"),
        (
            {"gallery_labels": [0, 1]},
            "^gallery_labels given without gallery: pass both, or neither",
        ),
        ({"backend": "annoy"}, "unknown kNN backend"),
    ],
)
def test_bad_input_is_a_clear_error(kwargs, message):
    args = {"query": np.eye(4, 3) + 0.1, "query_labels": [0, 0, 1, 1]}
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        retrieval_metrics(**args)


@pytest.mark.parametrize(
    ("gallery", "gallery_labels", "message"),
    [
        (np.ones((3, 5)), [0, 1, 1], "dimension 5 but the query embeddings have 3"),
        (np.ones((3, 3)), [0, 1], "2 labels but there are 3"),
        (np.ones((3, 3)), ["b", "b", "b"], r"gallery has a single class \(label 'b'\)"),
        (np.ones((3, 3)), None, "gallery_labels is None"),
        (np.array([[np.nan, 0, 1]] * 3), [0, 1, 1], "gallery has 3 row"),
    ],
)
def test_bad_gallery_is_a_clear_error(gallery, gallery_labels, message):
    with pytest.raises(ValueError, match=message):
        retrieval_metrics(np.eye(2, 3), [0, 1], gallery, gallery_labels)
