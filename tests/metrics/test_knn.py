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


@pytest.mark.parametrize("backend", ["torch", "faiss"])
@pytest.mark.parametrize("k", [1, 2])
def test_smallest_k_on_each_backend(ref, backend, k):
    x, _ = ref.grid(60, 3, seed=7)
    for q, g in ((x, None), (x[25:], x[:25])):
        _, idx = knn(q, k, g, backend=backend)
        np.testing.assert_array_equal(idx, [o[:k] for o in ref.ranking(q, g)])
    with pytest.raises(ValueError, match="k=0 neighbours requested"):
        knn(x, 0, backend=backend)


@pytest.mark.parametrize("tiles_per_group", [1, 2, 3])
@pytest.mark.parametrize("self_mode", [True, False])
def test_query_groups_of_several_tiles_match_brute_force(
    ref, monkeypatch, tiles_per_group, self_mode
):
    """Deep k: the queries go in groups of whole tiles; 150 rows end in a partial group and a
    partial tile, and in self mode each group must leave out its own rows (offset by the group)."""
    import sys

    knn_module = sys.modules["dml.metrics.knn"]
    k, tile = 40, 16
    monkeypatch.setattr(knn_module, "RUNNING_BYTES", 12 * k * tile * tiles_per_group)
    x, _ = ref.grid(190, 3, seed=3)
    q, g = (x[:150], None) if self_mode else (x[:150], x[40:])
    _, idx = knn(q, k, g, chunk_size=tile)
    np.testing.assert_array_equal(idx, np.stack([o[:k] for o in ref.ranking(q, g)]))


def test_minus_zero_ties_with_zero():
    # a cosine of 0 comes out as +0.0 or -0.0 depending on rounding: one similarity, by index
    keys = encode(torch.tensor([0.0, -0.0, 0.0]), torch.tensor([2, 0, 1]))
    assert torch.argsort(keys, descending=True).tolist() == [1, 2, 0]


@pytest.mark.parametrize("backend", ["torch", "faiss"])
@pytest.mark.parametrize("chunk", [1, 7, 13])
@pytest.mark.parametrize("self_mode", [True, False])
def test_chunks_cover_the_queries_in_order(ref, backend, chunk, self_mode):
    """iter_knn_arrays streams chunks of `chunk_size` queries (a last partial one when it does
    not divide N), each equal to the brute force of its rows."""
    from dml.metrics.knn import iter_knn_arrays

    x, _ = ref.grid(100, 3, seed=8)
    q, g = (x, None) if self_mode else (x[:60], x[60:])
    want = np.stack([o[:5] for o in ref.ranking(q, g)])
    parts = list(iter_knn_arrays(q, 5, g, backend=backend, chunk_size=chunk))
    assert [p[0] for p in parts] == list(range(0, len(q), chunk))
    for start, _, idx in parts:
        assert len(idx) == min(chunk, len(q) - start)
        np.testing.assert_array_equal(idx, want[start : start + len(idx)])


def test_backend_choice(monkeypatch):
    """auto: faiss when it runs on a GPU and k fits its GPU k-selection, else torch; an explicit
    choice is kept; faiss asked for but missing is an error that says what to install."""
    import sys

    from dml.metrics.knn import FAISS_GPU_MAX_K, choose_backend

    knn_module = sys.modules["dml.metrics.knn"]
    assert choose_backend("auto", 10) == "torch"  # no GPU here
    monkeypatch.setattr(knn_module, "faiss_gpu_available", lambda: True)
    assert choose_backend("auto", FAISS_GPU_MAX_K - 2) == "faiss"
    assert choose_backend("auto", FAISS_GPU_MAX_K - 1) == "torch"
    assert choose_backend("torch", 10) == "torch"
    assert choose_backend("faiss", 10) == "faiss"
    monkeypatch.setattr(knn_module, "_faiss", lambda: None)
    assert choose_backend("torch", 10) == "torch"
    with pytest.raises(
        ValueError, match=r"^backend='faiss' but faiss is not installed: pip install"
    ):
        choose_backend("faiss", 10)


@pytest.mark.parametrize(
    ("gpu_build", "gpus", "expected"), [(False, 0, False), (True, 0, False), (True, 1, True)]
)
def test_faiss_gpu_needs_a_gpu_build_and_a_gpu(monkeypatch, gpu_build, gpus, expected):
    import sys
    import types

    from dml.metrics.knn import faiss_gpu_available

    fake = types.SimpleNamespace(get_num_gpus=lambda: gpus)
    if gpu_build:
        fake.StandardGpuResources = object
    monkeypatch.setattr(sys.modules["dml.metrics.knn"], "_faiss", lambda: fake)
    assert faiss_gpu_available() is expected


@pytest.mark.parametrize("self_mode", [True, False])
def test_torch_backend_works_without_faiss(ref, monkeypatch, self_mode):
    """faiss missing: the running top-k falls back from faiss' heaps to torch.topk keys."""
    import sys

    knn_module = sys.modules["dml.metrics.knn"]
    monkeypatch.setattr(knn_module, "_faiss", lambda: None)
    assert isinstance(knn_module._selector(4, 2, 9, torch.device("cpu")), knn_module.KeySelector)
    x, _ = ref.grid(120, 4, seed=9)
    q, g = (x, None) if self_mode else (x[:50], x[50:])
    _, idx = knn(q, 20, g, backend="torch", chunk_size=32)
    np.testing.assert_array_equal(idx, np.stack([o[:20] for o in ref.ranking(q, g)]))
    with pytest.raises(ValueError, match="backend='faiss' but faiss is not installed"):
        knn(q, 20, g, backend="faiss")


def test_faiss_gpu_index_is_placed_on_the_gpu_with_its_resources(ref, monkeypatch):
    """faiss with GPU support (faked here: no GPU in CI): the gallery's index moves to GPU 0 and
    keeps the GPU resources alive as long as it lives; the search results are unchanged."""
    import sys
    import types

    import faiss

    knn_module = sys.modules["dml.metrics.knn"]
    moved = []

    class Resources:
        pass

    def index_cpu_to_gpu(res, device, index):
        assert isinstance(res, Resources) and device == 0
        gpu_index = types.SimpleNamespace(search=index.search, ntotal=index.ntotal)
        moved.append((gpu_index, res))
        return gpu_index

    fake = types.SimpleNamespace(
        IndexFlatIP=faiss.IndexFlatIP,
        StandardGpuResources=Resources,
        index_cpu_to_gpu=index_cpu_to_gpu,
        get_num_gpus=lambda: 1,
    )
    monkeypatch.setattr(knn_module, "_faiss", lambda: fake)
    x, _ = ref.grid(80, 3, seed=10)
    index = knn_module._faiss_index(x)
    assert moved and index is moved[0][0] and index.referenced_resources is moved[0][1]
    assert index.ntotal == 80
    _, idx = knn(x[:30], 5, x[30:], backend="faiss")
    np.testing.assert_array_equal(idx, np.stack([o[:5] for o in ref.ranking(x[:30], x[30:])]))
