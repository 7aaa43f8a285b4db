"""The one k-nearest-neighbour search of dml: cosine similarity, streamed in query chunks.

Neighbours are ordered by similarity (largest first) and, among equal similarities (duplicate
vectors), by gallery index (smallest first), whatever the backend or chunk size. In self mode
(gallery=None) each query's own row is left out by index, so a duplicate of the query is still
found. Backends: faiss (a GPU index when faiss has GPU support and a GPU is visible) and torch
(CUDA when available, else CPU). Memory stays bounded: one chunk of similarities at a time.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from dml.metrics.inputs import as_embeddings

# Bytes allowed for one chunk's [chunk, gallery] similarity block (torch) / result block (faiss).
CHUNK_BYTES = 1 << 28
# faiss' GPU k-selection handles at most this many neighbours; more goes through torch.
FAISS_GPU_MAX_K = 2048
BACKENDS = ("auto", "faiss", "torch")


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
    return bool(faiss is not None and hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0)


def choose_backend(backend: str, k: int) -> str:
    """Resolve "auto": faiss on a GPU when it can (k <= 2048), else torch (CUDA or CPU)."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown kNN backend {backend!r}; choose one of {BACKENDS}")
    if backend == "faiss" and _faiss() is None:
        raise ValueError("backend='faiss' but faiss is not installed: pip install faiss-cpu (or faiss-gpu)")
    if backend != "auto":
        return backend
    if faiss_gpu_available() and k + 2 <= FAISS_GPU_MAX_K:
        return "faiss"
    return "torch"


def sort_neighbours(vals: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of (similarity, index) reordered by similarity descending, then index ascending."""
    order = torch.argsort(idx, dim=1)
    vals, idx = vals.gather(1, order), idx.gather(1, order)
    order = torch.sort(vals, dim=1, descending=True, stable=True).indices
    return vals.gather(1, order), idx.gather(1, order)


def topk_rows(sims: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact top-k of each row of a similarity block, ties broken by column index.

    torch.topk orders ties arbitrarily and may cut a group of equal values at the k-th place;
    a row where the (k+1)-th value equals the k-th is redone with a stable full sort.
    """
    n = sims.shape[1]
    vals, idx = torch.topk(sims, min(k + 1, n), dim=1, largest=True, sorted=True)
    if vals.shape[1] > k:
        cut = (vals[:, k] == vals[:, k - 1]).nonzero().flatten()
        vals, idx = vals[:, :k].contiguous(), idx[:, :k].contiguous()
        if len(cut):
            sv, si = torch.sort(sims[cut], dim=1, descending=True, stable=True)
            vals[cut], idx[cut] = sv[:, :k], si[:, :k]
    return sort_neighbours(vals, idx)


def _torch_device() -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def _torch_chunks(
    query: np.ndarray, gallery: np.ndarray, k: int, self_mode: bool, chunk: int
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    device = _torch_device()
    g = torch.from_numpy(gallery).to(device)
    for start in range(0, len(query), chunk):
        q = torch.from_numpy(query[start : start + chunk]).to(device)
        sims = q @ g.T
        if self_mode:
            rows = torch.arange(len(q), device=device)
            sims[rows, rows + start] = -torch.inf
        vals, idx = topk_rows(sims, k)
        yield start, vals.cpu().numpy(), idx.cpu().numpy()


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
            keep = ~drop
            sims = sims[keep].view(len(q), kq - 1)
            idx = idx[keep].view(len(q), kq - 1)
        width = sims.shape[1]
        vals, nbrs = sims[:, :k].contiguous(), idx[:, :k].contiguous()
        if width > k:
            # a tie group cut at the k-th place: redo those rows exactly against the whole gallery
            cut = (sims[:, k] == sims[:, k - 1]).nonzero().flatten()
            if len(cut):
                full = torch.from_numpy(q[cut.numpy()]) @ torch.from_numpy(gallery).T
                if self_mode:
                    full[torch.arange(len(cut)), cut + start] = -torch.inf
                vals[cut], nbrs[cut] = topk_rows(full, k)
        vals, nbrs = sort_neighbours(vals, nbrs)
        yield start, vals.numpy(), nbrs.numpy()


def iter_knn_arrays(
    query: np.ndarray,
    k: int,
    gallery: np.ndarray | None = None,
    backend: str = "auto",
    chunk_size: int | None = None,
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Yield (start, similarities [c, k], indices [c, k]) for consecutive chunks of checked float32 arrays.

    No validation here: callers pass arrays that went through dml.metrics.inputs.
    """
    self_mode = gallery is None
    gallery = query if self_mode else gallery
    available = len(gallery) - int(self_mode)
    if not 1 <= k <= available:
        raise ValueError(
            f"k={k} neighbours requested but the gallery has {available} candidate(s) per query"
        )
    backend = choose_backend(backend, k)
    if chunk_size is None:
        per_row = 4 * (len(gallery) if backend == "torch" else 4 * (k + 2))
        chunk_size = max(1, CHUNK_BYTES // per_row)
    chunk_size = int(min(max(1, chunk_size), len(query)))
    chunks = _torch_chunks if backend == "torch" else _faiss_chunks
    yield from chunks(query, gallery, k, self_mode, chunk_size)


def knn(
    query,
    k: int,
    gallery=None,
    backend: str = "auto",
    chunk_size: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The k most cosine-similar gallery rows of each query: (similarities [Nq, k], indices [Nq, k]).

    gallery=None searches the query set itself and leaves each query's own row out. Rows are
    ordered by similarity, ties by gallery index. Inputs: [N, D] tensors or arrays, L2-normalised.
    """
    q = as_embeddings(query, "query")
    g = None if gallery is None else as_embeddings(gallery, "gallery", dim=q.shape[1])
    parts = list(iter_knn_arrays(q, int(k), g, backend=backend, chunk_size=chunk_size))
    return np.concatenate([p[1] for p in parts]), np.concatenate([p[2] for p in parts])
