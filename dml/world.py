"""World size and rank, and each rank's share of an eval set: the bottom of the multi-process glue.

Everything in dml that asks "how many processes, and which one am I" asks `world()`; data, the
batch sampler and training all read it from here (torch.distributed's default process group,
(1, 0) when there is none).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch.distributed as dist
from torch.utils.data import Sampler


def world(num_replicas: int | None = None, rank: int | None = None) -> tuple[int, int]:
    """(world size, rank): the given values, else the default process group's, else (1, 0)."""
    initialised = dist.is_available() and dist.is_initialized()
    if num_replicas is None:
        num_replicas = dist.get_world_size() if initialised else 1
    if rank is None:
        rank = dist.get_rank() if initialised else 0
    if num_replicas < 1:
        raise ValueError(f"num_replicas must be >= 1, got {num_replicas}")
    if not 0 <= rank < num_replicas:
        raise ValueError(f"rank must be in [0, {num_replicas}), got {rank}")
    return num_replicas, rank


def shard_bounds(n: int, num_replicas: int, rank: int) -> tuple[int, int]:
    """[start, stop) of rank's contiguous share of n items; shares differ in size by at most 1."""
    return n * rank // num_replicas, n * (rank + 1) // num_replicas


class EvalShardSampler(Sampler[int]):
    """Rank's contiguous, in-order share of an eval set, without padding or repeats.

    Concatenating the shares of ranks 0..W-1 gives the dataset's order back, so a gather in
    rank order (`dml.training.distributed.all_gather_uneven`) restores every item exactly once.
    """

    def __init__(self, length: int, num_replicas: int, rank: int) -> None:
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank must be in [0, {num_replicas}), got {rank}")
        self.start, self.stop = shard_bounds(int(length), int(num_replicas), int(rank))

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.start, self.stop))

    def __len__(self) -> int:
        return self.stop - self.start
