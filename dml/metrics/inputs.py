"""Conversion and validation of metric inputs: embeddings and labels as NumPy, with clear errors.

Every public metric goes through these helpers, so bad input (NaN, wrong shapes, empty sets)
fails the same way everywhere, naming the argument and the fix.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def to_numpy(x: Any) -> np.ndarray:
    """A NumPy view/copy of a torch tensor (any device, with or without grad), array or list."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):
        x = x.detach().cpu()
        if str(x.dtype) in ("torch.bfloat16", "torch.float16"):
            x = x.float()
        x = x.numpy()
    return np.asarray(x)


def as_embeddings(x: Any, name: str, dim: int | None = None) -> np.ndarray:
    """C-contiguous float32 [N, D] array, checked: 2-D, non-empty, finite, D == dim when given."""
    if x is None:
        raise ValueError(f"{name} is None: pass an [N, D] array of embeddings")
    arr = to_numpy(x)
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D [N, D] array of embeddings, got shape {tuple(arr.shape)}"
            + ("; reshape a single embedding with x[None]" if arr.ndim == 1 else "")
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(
            f"{name} is empty (shape {tuple(arr.shape)}): metrics need at least one row"
        )
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise ValueError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    bad = ~np.isfinite(arr).all(axis=1)
    if bad.any():
        rows = np.flatnonzero(bad)
        raise ValueError(
            f"{name} has {len(rows)} row(s) with NaN or inf (first: row {rows[0]}); "
            "the model produced non-finite embeddings: check the loss/learning rate or the input data"
        )
    if dim is not None and arr.shape[1] != dim:
        raise ValueError(
            f"{name} has dimension {arr.shape[1]} but the query embeddings have {dim}: "
            "query and gallery must come from the same model"
        )
    return arr


def as_labels(y: Any, name: str, n: int) -> np.ndarray:
    """1-D label array of length n (any dtype that NumPy can compare), checked."""
    if y is None:
        raise ValueError(f"{name} is None: pass one label per embedding")
    arr = to_numpy(y)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(
            f"{name} must be 1-D (one label per embedding), got shape {tuple(arr.shape)}"
        )
    if len(arr) != n:
        raise ValueError(
            f"{name} has {len(arr)} labels but there are {n} embeddings: pass one label per embedding row"
        )
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or inf labels")
    return arr


def unit_rows(x: np.ndarray, name: str) -> np.ndarray:
    """Rows scaled to unit L2 norm (float32); rows whose norm is already 1 stay bit-identical."""
    norms = np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64))
    if (norms == 0).any():
        raise ValueError(
            f"{name} has {int((norms == 0).sum())} all-zero row(s) (first: row "
            f"{int(np.flatnonzero(norms == 0)[0])}); cosine similarity is undefined for them"
        )
    off = np.abs(norms - 1.0) > 1e-6
    if not off.any():
        return x
    out = x.copy()
    out[off] = (x[off] / norms[off, None]).astype(np.float32)
    return out


def encode_labels(*labels: np.ndarray) -> list[np.ndarray]:
    """The label arrays re-coded as int64 ids 0..C-1 over their union (same label, same id)."""
    sizes = [len(y) for y in labels]
    try:
        _, codes = np.unique(np.concatenate(labels), return_inverse=True)
    except TypeError as e:  # e.g. mixed str/int labels
        raise ValueError(f"labels must be mutually comparable (one dtype), got: {e}") from e
    codes = codes.reshape(-1).astype(np.int64)
    return np.split(codes, np.cumsum(sizes)[:-1])
