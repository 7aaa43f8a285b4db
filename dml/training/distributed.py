"""Multi-process helpers: a gather that keeps the graph, uneven gathers, one seed for all samplers.

World size and rank, and the eval shards, come from `dml.world`.

Under DDP every rank gathers the embeddings and labels of all ranks (the global batch), so the
tuple sampler sees the same batch whatever the device count. Every rank then computes the same
loss on the same global batch (its sampler is seeded alike, see `share_sampler_seed`).

The gradient factor: the backward of `all_gather_with_grad` sums the gradient that each rank's
loss sends to a rank's rows (an all-reduce, then each rank keeps its own slice). With W ranks
holding the same loss L, a rank's rows receive W * dL/de; DDP then averages parameter
gradients over the W ranks, so the model's gradient is exactly dL/dtheta of one process on
the concatenated batch. Parameters of the loss itself (the margin loss's beta) get dL/dbeta on
every rank, and DDP's average leaves that unchanged. So the loss needs no extra scale factor.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from dml.world import world


def _sizes(x: Tensor) -> list[int]:
    """Length of dim 0 of `x` on every rank."""
    n = torch.tensor([x.shape[0]], dtype=torch.long, device=x.device)
    parts = [torch.zeros_like(n) for _ in range(world()[0])]
    dist.all_gather(parts, n)
    return [int(p) for p in parts]


def _gather_padded(x: Tensor, sizes: list[int]) -> Tensor:
    """Every rank's `x` (dim 0 of length sizes[r]) concatenated in rank order; padding dropped."""
    longest = max(sizes)
    x = x.contiguous()
    if x.shape[0] < longest:
        x = torch.cat([x, x.new_zeros((longest - x.shape[0], *x.shape[1:]))])
    parts = [torch.empty_like(x) for _ in sizes]
    dist.all_gather(parts, x)
    return torch.cat([p[:n] for p, n in zip(parts, sizes, strict=True)])


class _AllGatherWithGrad(torch.autograd.Function):
    """Forward: concatenation of every rank's rows. Backward: each rank's rows get the sum over
    ranks of the gradient sent to them (all-reduce), so gradients flow back to their owners."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, sizes: list[int]) -> Tensor:  # type: ignore[override]
        rank = world()[1]
        ctx.start, ctx.stop = sum(sizes[:rank]), sum(sizes[: rank + 1])
        return _gather_padded(x, sizes)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        grad = grad.contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.start : ctx.stop], None


def all_gather_with_grad(x: Tensor) -> Tensor:
    """[sum of N_r, ...]: every rank's `x` in rank order, differentiable back to each owner.

    Ranks may hold different numbers of rows. Identity without a process group (one process).
    """
    if world()[0] == 1:
        return x
    return _AllGatherWithGrad.apply(x, _sizes(x))


@torch.no_grad()
def all_gather_uneven(x: Tensor) -> Tensor:
    """Every rank's `x` (any length along dim 0) concatenated in rank order, without gradient."""
    if world()[0] == 1:
        return x
    return _gather_padded(x.detach(), _sizes(x))


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank `src`'s `obj` (picklable) on every rank; `obj` itself with one process."""
    if world()[0] == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def share_sampler_seed(sampler: Any) -> None:
    """Give every rank rank 0's sampler seed, so all ranks draw the same tuples of the global batch.

    A sampler with `seed=None` draws its seed from torch's global generator at its first call,
    and that generator's state may differ between ranks; this fixes it on rank 0 first.
    """
    if sampler is None or not hasattr(sampler, "seed") or world()[0] == 1:
        return
    seed = sampler.seed
    if seed is None and world()[1] == 0:
        seed = int(torch.randint(0, 2**62, (1,)).item())
    sampler.seed = broadcast_object(seed)
