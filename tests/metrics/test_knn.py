import numpy as np
import pytest
import torch

from dml.metrics import nearest_neighbors as knn
from dml.metrics.knn import decode, encode, first_match_rank


@pytest.mark.parametrize("backend", ["torch", "faiss"])
@pytest.mark.parametrize("chunk", [None, 7, 64])
@pytest.mark.parametrize("self_mode", [True, False])
def test_knn_matches_brute_force_with_ties(ref, backend, chunk, self_mode):
    x, _ = ref.grid(240, 5, seed=1)
    q, g = (x, None) if self_mode else (x[:100], x[100:])
    k = 30
    sims, idx = knn(q, k, g, backend=backend, chunk_size=chunk)
    expected = np.stack([o[:k] for o in ref.ranking(q, g)])
    np.testing.assert_array_equal(idx, expected)
    gal = x if g is None else g
    np.testing.assert_allclose(sims, np.take_along_axis(q @ gal.T, expected, 1), atol=1e-6)


@pytest.mark.parametrize("backend", ["torch", "faiss"])
def test_knn_continuous_data_with_duplicates(ref, backend):
    x, _ = ref.clustered(300, 24, 10, noise=0.5, seed=2)
    x[200:230] = x[0]  # 31 copies of one vector: the tie group is cut at k
    sims, idx = knn(x, 12, backend=backend, chunk_size=50)
    expected = np.stack([o[:12] for o in ref.ranking(x, None)])
    np.testing.assert_array_equal(idx, expected)
    # the copies of row 0 come first for row 0, in index order, and row 0 never lists itself
    np.testing.assert_array_equal(idx[0], np.arange(200, 212))
    assert not (idx == np.arange(300)[:, None]).any()


def test_knn_deep_k_uses_grouped_path(ref, monkeypatch):
    import sys

    knn_module = sys.modules["dml.metrics.knn"]
    monkeypatch.setattr(knn_module, "RUNNING_BYTES", 12 * 40 * 10)  # force small query groups
    x, _ = ref.grid(150, 3, seed=3)
    _, idx = knn(x, 40, chunk_size=16)
    np.testing.assert_array_equal(idx, np.stack([o[:40] for o in ref.ranking(x, None)]))


def test_knn_k_equal_to_all_candidates(ref):
    x, _ = ref.clustered(20, 4, 2, noise=1.0, seed=4)
    _, idx = knn(x, 19)
    np.testing.assert_array_equal(idx, np.stack(ref.ranking(x, None)))
    with pytest.raises(ValueError, match="k=20"):
        knn(x, 20)


def test_keys_order_by_value_then_index():
    vals = torch.tensor([0.5, -0.0, 0.0, -torch.inf, 0.5, -1.0])
    idx = torch.tensor([3, 1, 0, 4, 2, 5])
    keys = encode(vals, idx)
    order = torch.argsort(keys, descending=True)
    assert idx[order].tolist() == [2, 3, 0, 1, 5, 4]
    v, i = decode(keys)
    assert torch.equal(i, idx) and torch.equal(v, vals + 0.0)


def test_first_match_rank_counts_ties_by_index(ref):
    x, labels = ref.grid(120, 4, seed=5)
    rows = np.arange(120)
    has_pos = np.array([(labels == labels[i]).sum() > 1 for i in rows])
    rows = rows[has_pos]
    ranking = ref.ranking(x, None)
    want = [int(np.argmax(labels[ranking[i]] == labels[i])) for i in rows]
    np.testing.assert_array_equal(first_match_rank(x, labels, rows), want)
    np.testing.assert_array_equal(first_match_rank(x, labels, rows, chunk_size=7), want)
    q, g = x[:50], x[50:]
    has_pos = np.isin(labels[:50], labels[50:])
    rows = np.flatnonzero(has_pos)
    ranking = ref.ranking(q, g)
    want = [int(np.argmax(labels[50:][ranking[i]] == labels[i])) for i in rows]
    np.testing.assert_array_equal(
        first_match_rank(q, labels[:50], rows, g, labels[50:], chunk_size=9), want
    )


@pytest.mark.parametrize("self_mode", [True, False])
def test_torch_topk_selector_matches_brute_force(ref, monkeypatch, self_mode):
    """The selector used on CUDA (and without faiss): torch.topk per tile, merged as keys."""
    import sys

    knn_module = sys.modules["dml.metrics.knn"]
    monkeypatch.setattr(
        knn_module,
        "_selector",
        lambda rows, k, cols, device: knn_module.KeySelector(rows, k, device),
    )
    x, _ = ref.grid(200, 4, seed=6)
    q, g = (x, None) if self_mode else (x[:70], x[70:])
    _, idx = knn(q, 25, g, backend="torch", chunk_size=32)
    np.testing.assert_array_equal(idx, np.stack([o[:25] for o in ref.ranking(q, g)]))
