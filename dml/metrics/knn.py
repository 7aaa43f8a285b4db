"""The one k-nearest-neighbour search of dml: cosine similarity, streamed in tiles.

Neighbours are ordered by similarity (largest first) and, among equal similarities (duplicate
vectors), by gallery index (smallest first), whatever the backend or tile size. In self mode
(gallery=None) each query's own row is left out by index, so a duplicate of the query is still
found. Backends: torch (CUDA when available, else CPU; in self mode each tile of the similarity
matrix serves both its rows and its columns, half the multiply-adds) and faiss (a GPU index when
faiss has GPU support and sees a GPU). Memory stays bounded: a tile of similarities plus a
running top-k per query (query rows are processed in groups when that would be too large).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch import Tensor

from dml.metrics.inputs import as_embeddings, unit_rows

# Side of a square tile of the similarity matrix (torch backend); 2048^2 floats = 16 MiB.
TILE = 2048
# Bytes allowed for the running top-k keys of the queries in flight (8 bytes per neighbour).
RUNNING_BYTES = 1 << 28
# faiss' GPU k-selection handles at most this many neighbours; more goes through torch.
FAISS_GPU_MAX_K = 2048
BACKENDS = ("auto", "faiss", "torch")
_LOW32 = 0xFFFFFFFF
_EMPTY_KEY = torch.iinfo(torch.int64).min  # below every real key: "no neighbour yet"
_REVERSED = 1 << 40  # faiss heap ids are stored as _REVERSED - index


def _faiss():
    """The faiss module, or None when it is not installed."""
    try:
        import faiss
    except ImportError:  # pragma: no cover - faiss-cpu is a dependency
        return None
    return faiss


def faiss_gpu_available() -> bool:
    """True when the installed faiss was built with GPU support and sees at least one GPU."""
    faiss = _faiss()
    return bool(
        faiss is not None and hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0
    )


def choose_backend(backend: str, k: int) -> str:
    """Resolve "auto": faiss on a GPU when it can (k <= 2048), else torch (CUDA or CPU)."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown kNN backend {backend!r}; choose one of {BACKENDS}")
    if backend == "faiss" and _faiss() is None:
        raise ValueError(
            "backend='faiss' but faiss is not installed: pip install faiss-cpu (or faiss-gpu)"
        )
    if backend != "auto":
        return backend
    if faiss_gpu_available() and k + 2 <= FAISS_GPU_MAX_K:
        return "faiss"
    return "torch"


def encode(vals: Tensor, idx: Tensor) -> Tensor:
    """int64 keys whose order is (similarity descending, index ascending) as "larger first".

    High 32 bits: the float32 bit pattern made monotone as a signed int; low 32 bits: the
    complement of the index. -0.0 is folded into +0.0 so that the two tie.
    """
    bits = (vals.to(torch.float32) + 0.0).view(torch.int32)
    ordered = torch.where(bits >= 0, bits, bits ^ 0x7FFFFFFF).to(torch.int64)
    return (ordered << 32) | (_LOW32 - idx.to(torch.int64))


def decode(keys: Tensor) -> tuple[Tensor, Tensor]:
    """(similarities float32, indices int64) of keys made by encode()."""
    high = (keys >> 32).to(torch.int32)
    vals = torch.where(high >= 0, high, high ^ 0x7FFFFFFF).view(torch.float32)
    return vals, _LOW32 - (keys & _LOW32)


def topk_keys(sims: Tensor, k: int, col_offset: int = 0) -> Tensor:
    """Keys of the exact top-k of each row of a similarity block, ties broken by column index.

    torch.topk orders ties arbitrarily and may cut a group of equal values at the k-th place;
    a row where the (k+1)-th value equals the k-th is redone with a stable full sort.
    """
    n = sims.shape[1]
    k = min(k, n)
    vals, idx = torch.topk(sims, min(k + 1, n), dim=1, largest=True, sorted=True)
    if vals.shape[1] > k:
        cut = (vals[:, k] == vals[:, k - 1]).nonzero().flatten()
        vals, idx = vals[:, :k], idx[:, :k]
        if len(cut):
            vals, idx = vals.clone(), idx.clone()
            sv, si = torch.sort(sims[cut], dim=1, descending=True, stable=True)
            vals[cut], idx[cut] = sv[:, :k], si[:, :k]
    return encode(vals, idx + col_offset)


def merge_keys(running: Tensor, new: Tensor) -> Tensor:
    """The k largest of two key sets per row (k = running's width), sorted largest first."""
    both = torch.cat([running, new], dim=1)
    return torch.topk(both, running.shape[1], dim=1, largest=True, sorted=True).values


def _torch_device() -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def _spans(n: int, size: int) -> list[tuple[int, int]]:
    return [(s, min(s + size, n)) for s in range(0, n, size)]


def _decoded(keys: Tensor) -> tuple[np.ndarray, np.ndarray]:
    vals, idx = decode(keys)
    return vals.cpu().numpy(), idx.cpu().numpy()


class KeySelector:
    """Running top-k of each row as int64 keys, merged tile by tile with torch.topk (any device)."""

    def __init__(self, rows: int, k: int, device: torch.device):
        self.k = k
        self.keys = torch.full((rows, k), _EMPTY_KEY, dtype=torch.int64, device=device)

    def add(self, sims: Tensor, row0: int, col0: int) -> None:
        rows = slice(row0, row0 + len(sims))
        self.keys[rows] = merge_keys(self.keys[rows], topk_keys(sims, self.k, col0))

    def result(self, r0: int, r1: int) -> tuple[np.ndarray, np.ndarray]:
        return _decoded(self.keys[r0:r1])


class HeapSelector:
    """Running top-k of each row in faiss' heaps (CPU): most similarities cost one comparison.

    Columns must reach each row in increasing index order (the tile loops guarantee it): a value
    equal to the current k-th is then rightly refused. Ids are stored reversed because faiss
    evicts the smallest id among equal worst values, and the largest index must go.
    """

    def __init__(self, rows: int, k: int, cols: int):
        faiss = _faiss()
        self.val = np.empty((rows, k), dtype=np.float32)
        self.ids = np.empty((rows, k), dtype=np.int64)
        self.reversed = _REVERSED - np.arange(cols, dtype=np.int64)
        self.heaps = faiss.float_minheap_array_t()
        self.heaps.nh, self.heaps.k = rows, k
        self.heaps.val, self.heaps.ids = faiss.swig_ptr(self.val), faiss.swig_ptr(self.ids)
        self.heaps.heapify()

    def add(self, sims: Tensor, row0: int, col0: int) -> None:
        faiss = _faiss()
        h, w = sims.shape
        block = np.ascontiguousarray(sims.numpy())
        ids = self.reversed[col0 : col0 + w]
        self.heaps.addn_with_ids(w, faiss.swig_ptr(block), faiss.swig_ptr(ids), 0, row0, h)

    def result(self, r0: int, r1: int) -> tuple[np.ndarray, np.ndarray]:
        vals = torch.from_numpy(self.val[r0:r1])
        keys = encode(vals, _REVERSED - torch.from_numpy(self.ids[r0:r1]))
        return _decoded(torch.sort(keys, dim=1, descending=True).values)


def _selector(rows: int, k: int, cols: int, device: torch.device):
    if device.type == "cpu" and _faiss() is not None:
        return HeapSelector(rows, k, cols)
    return KeySelector(rows, k, device)


class _Buffers:
    """Reused flat buffers for similarity tiles: no fresh pages to fault in for every tile."""

    def __init__(self, tile: int, device: torch.device, count: int):
        self.flat = [torch.empty(tile * tile, device=device) for _ in range(count)]

    def view(self, which: int, h: int, w: int) -> Tensor:
        return self.flat[which][: h * w].view(h, w)


def _symmetric_tiles(x: Tensor, k: int, tile: int) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Self mode: tile (i, j >= i) gives candidates to the rows of block i and, transposed, of j.

    Half the multiply-adds of a full similarity matrix. Block i is final once its row is done.
    """
    spans = _spans(len(x), tile)
    selector = _selector(len(x), k, len(x), x.device)
    buffers = _Buffers(min(tile, len(x)), x.device, 2)
    for bi, (r0, r1) in enumerate(spans):
        for c0, c1 in spans[bi:]:
            sims = torch.mm(x[r0:r1], x[c0:c1].T, out=buffers.view(0, r1 - r0, c1 - c0))
            if c0 == r0:
                sims.fill_diagonal_(-torch.inf)
            selector.add(sims, r0, c0)
            if c0 != r0:
                selector.add(buffers.view(1, c1 - c0, r1 - r0).copy_(sims.T), c0, r0)
        yield (r0, *selector.result(r0, r1))


def _grouped_tiles(
    q: Tensor, g: Tensor, k: int, tile: int, self_mode: bool
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Query rows in groups small enough for their running top-k; every gallery tile per group."""
    group = max(tile, (RUNNING_BYTES // (12 * k)) // tile * tile)
    buffers = _Buffers(tile, q.device, 1)
    for g0, g1 in _spans(len(q), group):
        selector = _selector(g1 - g0, k, len(g), q.device)
        for r0, r1 in _spans(g1 - g0, tile):
            rows = q[g0 + r0 : g0 + r1]
            for c0, c1 in _spans(len(g), tile):
                sims = torch.mm(rows, g[c0:c1].T, out=buffers.view(0, r1 - r0, c1 - c0))
                if self_mode and c0 < g0 + r1 and g0 + r0 < c1:  # own rows inside this tile
                    own = torch.arange(max(g0 + r0, c0), min(g0 + r1, c1), device=q.device)
                    sims[own - g0 - r0, own - c0] = -torch.inf
                selector.add(sims, r0, c0)
        for r0, r1 in _spans(g1 - g0, tile):
            yield (g0 + r0, *selector.result(r0, r1))


def _torch_chunks(
    query: np.ndarray, gallery: np.ndarray, k: int, self_mode: bool, tile: int
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    device = _torch_device()
    q = torch.from_numpy(query).to(device)
    if self_mode and len(q) * k * 12 <= RUNNING_BYTES:
        yield from _symmetric_tiles(q, k, tile)
    else:
        g = q if self_mode else torch.from_numpy(gallery).to(device)
        yield from _grouped_tiles(q, g, k, tile, self_mode)


def _faiss_index(gallery: np.ndarray):
    faiss = _faiss()
    index = faiss.IndexFlatIP(gallery.shape[1])
    index.add(gallery)
    if faiss_gpu_available():  # pragma: no cover - needs faiss-gpu and a GPU
        res = faiss.StandardGpuResources()
        index = faiss.index_cpu_to_gpu(res, 0, index)
        index.referenced_resources = res  # keep the resources alive with the index
    return index


def _faiss_chunks(
    query: np.ndarray, gallery: np.ndarray, k: int, self_mode: bool, chunk: int
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    index = _faiss_index(gallery)
    n = len(gallery)
    # one extra neighbour to detect a tie cut at the k-th place, one more for the query itself
    kq = min(k + 1 + int(self_mode), n)
    for start in range(0, len(query), chunk):
        q = query[start : start + chunk]
        sims, idx = index.search(q, kq)
        sims, idx = torch.from_numpy(sims), torch.from_numpy(idx)
        if self_mode:  # drop the query's own row by index (or the last one if not retrieved)
            drop = idx == torch.arange(start, start + len(q))[:, None]
            drop[~drop.any(1), -1] = True
            sims = sims[~drop].view(len(q), kq - 1)
            idx = idx[~drop].view(len(q), kq - 1)
        keys = encode(sims[:, :k], idx[:, :k])
        if sims.shape[1] > k:
            # a tie group cut at the k-th place: redo those rows exactly against the whole gallery
            cut = (sims[:, k] == sims[:, k - 1]).nonzero().flatten()
            if len(cut):
                full = torch.from_numpy(q[cut.numpy()]) @ torch.from_numpy(gallery).T
                if self_mode:
                    full[torch.arange(len(cut)), cut + start] = -torch.inf
                keys[cut] = topk_keys(full, k)
        yield (start, *_decoded(torch.sort(keys, dim=1, descending=True).values))


def iter_knn_arrays(
    query: np.ndarray,
    k: int,
    gallery: np.ndarray | None = None,
    backend: str = "auto",
    chunk_size: int | None = None,
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Yield (start, similarities [c, k], indices [c, k]) for consecutive query chunks, in order.

    Takes checked, L2-normalised float32 arrays (see dml.metrics.inputs). chunk_size: tile side
    (torch) or queries per search (faiss).
    """
    self_mode = gallery is None
    available = len(query if self_mode else gallery) - int(self_mode)
    if not 1 <= k <= available:
        raise ValueError(
            f"k={k} neighbours requested but the gallery has {available} candidate(s) per query"
        )
    backend = choose_backend(backend, k)
    if backend == "torch":
        yield from _torch_chunks(query, gallery, k, self_mode, int(chunk_size or TILE))
    else:
        chunk = int(chunk_size or max(1, RUNNING_BYTES // (16 * (k + 2))))
        yield from _faiss_chunks(query, query if self_mode else gallery, k, self_mode, chunk)


def nearest_neighbors(
    query,
    k: int,
    gallery=None,
    backend: str = "auto",
    chunk_size: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The k most cosine-similar gallery rows of each query: (similarities [Nq, k], indices [Nq, k]).

    gallery=None searches the query set itself and leaves each query's own row out. Rows are
    ordered by similarity, ties by gallery index. Inputs: [N, D] tensors or arrays.
    """
    q = unit_rows(as_embeddings(query, "query"), "query")
    g = (
        None
        if gallery is None
        else unit_rows(as_embeddings(gallery, "gallery", dim=q.shape[1]), "gallery")
    )
    parts = list(iter_knn_arrays(q, int(k), g, backend=backend, chunk_size=chunk_size))
    return np.concatenate([p[1] for p in parts]), np.concatenate([p[2] for p in parts])


def first_match_rank(
    query: np.ndarray,
    query_codes: np.ndarray,
    rows: np.ndarray,
    gallery: np.ndarray | None = None,
    gallery_codes: np.ndarray | None = None,
    chunk_size: int | None = None,
) -> np.ndarray:
    """For query `rows`: how many gallery items rank before the query's best same-class item.

    Same order as knn() (similarity, then index; own item left out in self mode), but over the
    whole gallery, for Recall@K with K deeper than the kNN lists. Every row needs a same-class item.
    """
    self_mode = gallery is None
    device = _torch_device()
    g = torch.from_numpy(query if self_mode else gallery).to(device)
    gcodes = query_codes if self_mode else gallery_codes
    members = np.argsort(gcodes, kind="stable")  # gallery indices grouped by class, ascending
    starts = np.searchsorted(gcodes[members], np.arange(int(gcodes.max()) + 2))
    chunk = int(chunk_size or max(1, (RUNNING_BYTES // 8) // (4 * len(g))))  # ~32 MiB of sims
    buffer = torch.empty((min(chunk, len(rows)), len(g)), dtype=torch.float32, device=device)
    out = np.empty(len(rows), dtype=np.int64)
    for c0, c1 in _spans(len(rows), chunk):
        sims = torch.mm(torch.from_numpy(query[rows[c0:c1]]).to(device), g.T, out=buffer[: c1 - c0])
        sims = sims.cpu().numpy()
        # one row at a time in NumPy: small temporaries, and faster than torch's bool reductions
        for i, row in enumerate(rows[c0:c1]):
            s = sims[i]
            if self_mode:
                s[row] = -np.inf
            code = query_codes[row]
            same = members[starts[code] : starts[code + 1]]
            same = same[same != row] if self_mode else same
            best = s[same].max()
            first = same[np.argmax(s[same] == best)]  # lowest index among the best matches
            out[c0 + i] = np.count_nonzero(s > best) + np.count_nonzero(s[:first] == best)
    return out
