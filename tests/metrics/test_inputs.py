"""Input checks shared by every metric (dml.metrics.inputs): each error names the argument at
fault and the fix, and valid inputs of any supported form (torch tensors in half precision, label
columns, float or string labels, huge or nearly-unit rows) give the same numbers."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dml.metrics import (
    clustering_metrics,
    evaluate_embeddings,
    nearest_neighbors,
    retrieval_metrics,
    verification_metrics,
)
from dml.metrics.inputs import as_embeddings, as_labels, encode_labels, unit_rows

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


PROPERTY = settings(max_examples=30, deadline=None)

QUERY = np.eye(4, 3) + 0.1
LABELS = [0, 0, 1, 1]


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"query": None}, "query is None"),
        ({"query_labels": None}, "query_labels is None"),
        ({"query": np.ones(4)}, "query must be a 2-D"),
        ({"query": QUERY.astype(np.complex64)}, "query must hold real numbers"),
        ({"query": np.array([["a", "b", "c"]] * 4)}, "query must hold real numbers"),
        ({"query": np.array([[1.0, 0, 0], [np.inf, 0, 0], [0, 1, 0], [0, 0, 1]])}, "non-finite"),
        (
            {"query": np.array([[1.0, 0, 0], [0, 0, 0], [0, 1, 0], [0, 0, 1]])},
            "query has 1 all-zero",
        ),
        ({"query_labels": [0, 0, 1]}, "query_labels has 3 labels"),
        ({"query_labels": [0.0, np.nan, 1.0, 1.0]}, "query_labels contains NaN or inf"),
        ({"query_labels": [0.0, 0.0, np.inf, 1.0]}, "query_labels contains NaN or inf"),
        ({"query_labels": np.array([1, "a", 1, "a"], dtype=object)}, "mutually comparable"),
    ],
)
def test_each_bad_query_input_names_the_argument_and_the_problem(kwargs, words):
    args = {"query": QUERY, "query_labels": LABELS, **kwargs}
    with pytest.raises(ValueError, match=words):
        retrieval_metrics(**args)


@pytest.mark.parametrize(
    ("gallery", "words"),
    [
        (np.array([[1.0, 0, 0], [0, 0, 0], [0, 1, 0]]), "gallery has 1 all-zero"),
        (np.ones((3, 2)), "query and gallery must come from the same model"),
    ],
)
def test_each_bad_gallery_names_the_argument_and_the_problem(gallery, words):
    with pytest.raises(ValueError, match=words):
        retrieval_metrics(QUERY, LABELS, gallery, [0, 1, 1])


def test_only_a_single_embedding_gets_the_reshape_hint():
    with pytest.raises(
        ValueError, match=r"got shape \(3,\); reshape a single embedding with x\[None\]"
    ):
        as_embeddings(np.ones(3), "query")
    with pytest.raises(ValueError, match=r"got shape \(2, 2, 2\)$"):  # no hint: it does not apply
        as_embeddings(np.ones((2, 2, 2)), "query")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_torch_tensors_of_any_float_dtype_become_float32_arrays(dtype):
    x = torch.tensor([[0.5, -1.0], [2.0, 0.25]], dtype=dtype, requires_grad=True)
    arr = as_embeddings(x, "query")
    assert arr.dtype == np.float32 and arr.flags.c_contiguous
    np.testing.assert_array_equal(arr, [[0.5, -1.0], [2.0, 0.25]])  # exact in every dtype


def test_strided_integer_input_becomes_contiguous_float32():
    x = np.arange(24, dtype=np.int64).reshape(4, 6)[:, ::2]
    arr = as_embeddings(x, "query")
    assert arr.dtype == np.float32 and arr.flags.c_contiguous
    np.testing.assert_array_equal(arr, x)


@pytest.mark.parametrize(
    "labels",
    [
        np.array([[3], [3], [7], [7]]),
        torch.tensor([[3], [3], [7], [7]]),
        np.array([3.0, 3.0, 7.0, 7.0]),
        ["b", "b", "a", "a"],
    ],
)
def test_label_columns_and_float_or_string_labels_score_like_int_labels(labels):
    expected = retrieval_metrics(QUERY, [3, 3, 7, 7])
    assert retrieval_metrics(QUERY, labels) == expected
    assert as_labels(labels, "labels", 4).shape == (4,)


@st.composite
def label_arrays(draw):
    """1 to 4 label arrays (ints or strings), some empty, drawn from a small shared alphabet."""
    kind = draw(st.sampled_from(["int", "str"]))
    values = st.integers(-3, 3) if kind == "int" else st.sampled_from(["x", "y", "z", "w"])
    arrays = draw(st.lists(st.lists(values, max_size=6), min_size=1, max_size=4))
    return [np.array(a, dtype=np.int64 if kind == "int" else "<U1") for a in arrays]


@PROPERTY
@given(labels=label_arrays())
def test_encoded_labels_are_0_to_c_minus_1_and_equal_exactly_where_the_labels_are(labels):
    codes = encode_labels(*labels)
    assert [len(c) for c in codes] == [len(y) for y in labels]
    flat_codes, flat_labels = np.concatenate(codes), np.concatenate(labels)
    assert flat_codes.dtype == np.int64
    assert sorted(set(flat_codes.tolist())) == list(range(len(set(flat_labels.tolist()))))
    same_label = flat_labels[:, None] == flat_labels[None, :]
    np.testing.assert_array_equal(flat_codes[:, None] == flat_codes[None, :], same_label)


@PROPERTY
@given(
    seed=st.integers(0, 2**32 - 1),
    dim=st.integers(1, 64),
    scale=st.sampled_from([1e-20, 1e-3, 0.5, 2.0, 3.0, 1e3, 1e20]),
)
def test_rows_are_scaled_to_unit_norm_at_any_magnitude(seed, dim, scale):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(5, dim))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True) * scale).astype(np.float32)
    out = unit_rows(x, "query")
    assert out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out.astype(np.float64), axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(
        out, x / np.linalg.norm(x.astype(np.float64), axis=1)[:, None], rtol=1e-6, atol=1e-9
    )


@PROPERTY
@given(seed=st.integers(0, 2**32 - 1), off=st.floats(-9e-7, 9e-7))
def test_rows_within_1e_6_of_unit_norm_stay_bit_identical(seed, off):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(4, 3))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    x[0] = [1 + off, 0, 0]  # float32 rounding keeps the norm within 1e-6 of 1
    assert abs(np.linalg.norm(x[0].astype(np.float64)) - 1) <= 1e-6
    np.testing.assert_array_equal(unit_rows(x, "query").view(np.int32), x.view(np.int32))


@pytest.mark.parametrize("option", ["nmi", "retrieval"])
def test_a_metrics_switch_that_is_not_a_boolean_is_named_in_the_error(option):
    with pytest.raises(ValueError, match=f"metrics.{option} must be true or false, got 'yes'"):
        evaluate_embeddings(QUERY, LABELS, **{option: "yes"})
