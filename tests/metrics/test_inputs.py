"""Input checks shared by every metric (dml.metrics.inputs): each error names the argument at
fault and the fix, and valid inputs of any supported type give the same numbers."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from dml.metrics import (
    clustering_metrics,
    evaluate_embeddings,
    nearest_neighbors,
    retrieval_metrics,
    verification_metrics,
)
from dml.metrics.inputs import as_embeddings, as_labels, unit_rows

X = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]], dtype=np.float32)
Y = np.array([0, 0, 1, 1])


def bad(kind: str, n: int = 4, dim: int = 2) -> np.ndarray:
    """An [n, dim] embedding array with one defect of the given kind."""
    x = np.ones((n, dim), dtype=np.float32)
    if kind == "nan":
        x[1, 0] = np.nan
    elif kind == "zero":
        x[2] = 0.0
    return x


# every public entry point and each of its embedding arguments
CALLS = {
    "knn-query": (lambda x: nearest_neighbors(x, 1), "query"),
    "knn-gallery": (lambda x: nearest_neighbors(X, 1, x), "gallery"),
    "ret-query": (lambda x: retrieval_metrics(x, Y), "query"),
    "ret-gallery": (lambda x: retrieval_metrics(X, Y, x, Y), "gallery"),
    "clu": (lambda x: clustering_metrics(x, Y), "embeddings"),
    "ver-a": (lambda x: verification_metrics(x, X, Y, folds=2), "emb_a"),
    "ver-b": (lambda x: verification_metrics(X, x, Y, folds=2), "emb_b"),
}
NAN = r"has 1 row\(s\) with NaN or inf \(first: row 1\).*check the loss/learning rate or the input data$"
ZERO = r"has 1 all-zero row\(s\) \(first: row 2\); cosine similarity is undefined"
# k-means needs no direction: an all-zero row is a valid point to cluster
CASES = [(c, "nan", NAN) for c in CALLS] + [(c, "zero", ZERO) for c in CALLS if c != "clu"]


@pytest.mark.parametrize(("call", "kind", "message"), CASES, ids=[f"{c}-{k}" for c, k, _ in CASES])
def test_a_bad_embedding_row_is_named_by_argument_and_row(call, kind, message):
    fn, name = CALLS[call]
    with pytest.raises(ValueError, match=rf"^{name} {message}"):
        fn(bad(kind))


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda y: retrieval_metrics(X, y), "query_labels"),
        (lambda y: retrieval_metrics(X, Y, X, y), "gallery_labels"),
        (lambda y: clustering_metrics(X, y), "labels"),
        (lambda y: verification_metrics(X, X, y, folds=2), "same"),
    ],
    ids=["ret-query", "ret-gallery", "clu", "ver"],
)
def test_a_label_count_mismatch_is_named_by_argument(call, name):
    with pytest.raises(ValueError, match=rf"^{name} has 3 labels but there are 4 embeddings"):
        call(np.array([0, 1, 1]))


def test_gallery_of_another_dimension_is_refused_with_the_cause():
    # named before any search runs: the message says the two sets come from different models
    for call in (
        lambda: nearest_neighbors(X, 1, np.ones((5, 3))),
        lambda: retrieval_metrics(X, Y, np.ones((5, 3)), [0, 0, 1, 1, 1]),
    ):
        with pytest.raises(ValueError, match="query and gallery must come from the same model$"):
            call()


def test_shape_errors_say_how_to_fix_a_single_embedding():
    with pytest.raises(
        ValueError, match=re.escape("; reshape a single embedding with x[None]") + "$"
    ):
        as_embeddings(np.ones(3), "query")
    with pytest.raises(ValueError, match=r"got shape \(2, 2, 2\)$"):  # no reshape hint for 3-D
        as_embeddings(np.ones((2, 2, 2)), "query")
    with pytest.raises(ValueError, match=r"^query is None: pass an \[N, D\] array"):
        as_embeddings(None, "query")
    with pytest.raises(ValueError, match="^query_labels is None: pass one label per embedding"):
        as_labels(None, "query_labels", 4)


@pytest.mark.parametrize(
    "values",
    [np.ones((4, 2), dtype=np.complex64), np.array([["a", "b"]] * 4)],
    ids=["complex", "str"],
)
def test_embeddings_must_be_real_numbers(values):
    with pytest.raises(ValueError, match="^query must hold real numbers, got dtype"):
        as_embeddings(values, "query")


def test_non_finite_float_labels_are_refused():
    with pytest.raises(ValueError, match="^query_labels contains NaN or inf labels"):
        retrieval_metrics(X, np.array([0.0, 0.0, np.nan, 1.0]))
    # finite float labels are fine and mean the same as ints
    assert retrieval_metrics(X, Y.astype(float)) == retrieval_metrics(X, Y)


def test_labels_of_mixed_types_are_a_clear_error():
    mixed = np.array([0, "a", 0, "a"], dtype=object)
    with pytest.raises(ValueError, match="labels must be mutually comparable"):
        retrieval_metrics(X, mixed)


def test_column_labels_mean_the_same_as_flat_labels():
    # an [N, 1] label array (a common dataloader output) is one label per row
    assert retrieval_metrics(X, Y[:, None]) == retrieval_metrics(X, Y)
    assert clustering_metrics(X, Y[:, None]) == clustering_metrics(X, Y)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_tensors_are_accepted(dtype):
    # NumPy has no bfloat16: the tensor is widened first. Values exact in bf16 (multiples of
    # 1/8), so the metrics equal those of the same float32 values
    x = torch.tensor(np.round(X * 8) / 8).to(dtype)
    assert as_embeddings(x, "query").dtype == np.float32
    assert retrieval_metrics(x, Y) == retrieval_metrics(x.float(), Y)


def test_unit_rows_keeps_normalised_rows_bit_identical():
    # rows normalised in float32 are off 1 by rounding only: used as they are, so the metrics of
    # already normalised embeddings see exactly the given values
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 7)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    assert not (np.einsum("ij,ij->i", x.astype(np.float64), x) == 1.0).all()
    assert np.array_equal(unit_rows(x, "query"), x)
    # other rows are scaled to norm 1, the given array left alone
    y = x.copy()
    y[3] *= 2
    out = unit_rows(y, "query")
    assert np.array_equal(out[np.arange(50) != 3], x[np.arange(50) != 3])
    assert np.linalg.norm(out[3].astype(np.float64)) == pytest.approx(1.0, abs=1e-6)
    assert np.array_equal(y[3], 2 * x[3])


def test_config_flags_must_be_booleans():
    for name in ("nmi", "retrieval"):
        with pytest.raises(ValueError, match=f"^metrics.{name} must be true or false, got 'yes'"):
            evaluate_embeddings(X, Y, **{name: "yes"})
