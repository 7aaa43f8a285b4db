"""The one pairwise distance of the project: Euclidean, for L2-normalised embeddings (d in [0, 2]).

Samplers, losses and diagnostics all go through these functions, so that a batch's distance
matrix can be computed once and shared (DESIGN section 2).
"""

from __future__ import annotations

import torch
from torch import Tensor

# Squared distances below this are clamped before the square root: the gradient of sqrt is
# infinite at 0, and the clamp makes it exactly 0 there instead.
SQRT_EPS = 1e-12


def in_compute_dtype(x: Tensor) -> Tensor:
    """x itself in float32/float64, else converted to float32 (16-bit distances lose too much).

    No torch call when nothing changes: at these sizes every call's overhead counts.
    """
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def pairwise_distance(x: Tensor, y: Tensor | None = None, squared: bool = False) -> Tensor:
    """Euclidean distance matrix [N, M] between rows of x [N, D] and y [M, D] (y=None: x to itself).

    Computed in at least float32 through the Gram matrix; squared distances are clamped at 0
    (and at a tiny epsilon before the square root) so values and gradients stay finite, also at
    d = 0 (where the gradient is 0). With y=None the diagonal is exactly 0.
    """
    if x.dim() != 2:
        raise ValueError(
            f"pairwise_distance expects a 2-D [N, D] tensor, got shape {tuple(x.shape)}"
        )
    x = in_compute_dtype(x)
    dtype = x.dtype
    same = y is None
    if same:
        y = x
    else:
        if y.dim() != 2 or y.shape[1] != x.shape[1]:
            raise ValueError(
                f"pairwise_distance: y must be [M, {x.shape[1]}] like x, got shape {tuple(y.shape)}"
            )
        y = y.to(dtype)
    if same and not squared:
        return _SelfDistance.apply(x)
    return _distance_from_gram(x, y, same, squared)


def _distance_from_gram(x: Tensor, y: Tensor, same: bool, squared: bool) -> Tensor:
    """Distances through x y^T (recorded by autograd op by op)."""
    gram = x @ y.t()
    if same:
        # norms from the Gram diagonal: then n_i + n_i - 2 G_ii is exactly 0 in floating point
        norms = gram.diagonal()
        sq = norms.unsqueeze(1) + norms.unsqueeze(0) - 2.0 * gram
    else:
        sq = (x * x).sum(dim=1, keepdim=True) + (y * y).sum(dim=1).unsqueeze(0) - 2.0 * gram
    sq = sq.clamp_min(0.0)
    if squared:
        return sq
    return torch.where(sq > 0, sq.clamp_min(SQRT_EPS).sqrt(), 0.0)


class _SelfDistance(torch.autograd.Function):
    """d = pairwise_distance(x) in ~10 ops forward and 6 backward (autograd's graph: ~30).

    At the batch sizes of metric learning the per-op overhead dominates, so this matters.
    Backward: with W = G / d (0 where d < 1e-6) and S = W + W^T, dL/dx = rowsum(S) x - S x,
    since d d_ij / d x_i = (x_i - x_j) / d_ij.
    """

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # type: ignore[override]
        gram = x @ x.t()
        # |x_i|^2 + |x_j|^2 - 2 x_i.x_j with the norms from the Gram diagonal: then the diagonal
        # n_i + n_i - 2 n_i is exactly 0 in floating point
        norms = gram.diagonal()
        sq = torch.add(norms.unsqueeze(1) + norms.unsqueeze(0), gram, alpha=-2.0)
        d = sq.clamp_min_(0.0).sqrt_()
        ctx.save_for_backward(x, d)
        return d

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        x, d = ctx.saved_tensors
        w = (grad / d).masked_fill_(d <= SQRT_EPS**0.5, 0.0)  # also clears grad / 0
        s = w + w.t()
        return torch.addmm(s.sum(dim=1, keepdim=True) * x, s, x, alpha=-1.0)


def similarity_from_distance(distances: Tensor) -> Tensor:
    """Cosine similarity s = 1 - d^2 / 2 of L2-normalised embeddings from their distance d."""
    return 1.0 - 0.5 * in_compute_dtype(distances).square()


def cosine_similarity(x: Tensor, y: Tensor | None = None) -> Tensor:
    """Cosine similarity matrix of L2-normalised embeddings, 1 - d^2/2 from the one distance."""
    return 1.0 - 0.5 * pairwise_distance(x, y, squared=True)
