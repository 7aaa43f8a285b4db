"""Shared machinery of tuple samplers: input checks, the shared distance matrix, a seeded generator.

A sampler never builds a graph: it sees detached distances and returns index tuples. It keeps
the distances of the tuples it picked in its last call (``last_distances``) for diagnostics.
"""

from __future__ import annotations

import torch
from torch import Tensor

from dml.distances import in_compute_dtype, pairwise_distance
from dml.samplers.tuples import Tuples, check_batch


class BaseSampler:
    """Calls ``sample(distances, labels, dim)`` on detached distances, with a generator owned here.

    seed: seed of the sampler's own torch.Generator; None draws one from torch's global RNG at
    the first call (so a run seeded with ``seed_everything`` is still reproducible).
    """

    def __init__(self, seed: int | None = None) -> None:
        if seed is not None and not isinstance(seed, int):
            raise TypeError(f"sampler seed must be an int or None, got {seed!r}")
        self.seed = seed
        self._generators: dict[str, torch.Generator] = {}
        self._last: tuple[Tensor, Tuples] | None = None

    @property
    def strategies(self) -> dict[str, str]:
        """The strategies this sampler picks positives and negatives with, by kind (for plots and
        logs): {'positive': 'easy', 'negative': 'distance_weighted'}. Subclasses name theirs."""
        name = type(self).__name__.removesuffix("Sampler").lower() or "sampler"
        return {"positive": name, "negative": name}

    @property
    def last_distances(self) -> dict[str, Tensor]:
        """Distances of the tuples picked in the last call: {"positive": d_ap, "negative": d_an}.

        Gathered on access from the (detached) matrix kept from that call, so a training step
        that does not look at them pays nothing.
        """
        if self._last is None:
            return {}
        distances, tuples = self._last
        if len(tuples) == 3:
            a, p, n = tuples
            return {"positive": distances[a, p], "negative": distances[a, n]}
        pa, p, na, n = tuples
        return {"positive": distances[pa, p], "negative": distances[na, n]}

    def generator(self, device: torch.device) -> torch.Generator:
        """The sampler's generator for `device`, created and seeded on first use."""
        key = str(device)
        if key not in self._generators:
            if self.seed is None:
                self.seed = int(torch.randint(0, 2**62, (1,)).item())
            gen = torch.Generator(device=device)
            gen.manual_seed(self.seed)
            self._generators[key] = gen
        return self._generators[key]

    def __call__(
        self, embeddings: Tensor, labels: Tensor, distances: Tensor | None = None
    ) -> Tuples:
        """Tuples of batch indices for embeddings [B, D] and labels [B]; distances: optional [B, B]."""
        check_batch(embeddings, labels, distances)
        with torch.no_grad():
            if distances is None:
                distances = pairwise_distance(embeddings.detach())
            else:
                distances = in_compute_dtype(distances.detach())
            if labels.device != distances.device:
                labels = labels.to(distances.device)
            return self.sample(distances, labels, embeddings.shape[1])

    def sample(
        self, distances: Tensor, labels: Tensor, dim: int, ref_labels: Tensor | None = None
    ) -> Tuples:
        """Tuples from detached distances [B, N] of anchors to references (default: the batch).

        ref_labels [N]: labels of the references, which start with the batch (e.g. batch + a
        cross-batch memory); anchors index rows, positives and negatives index columns.
        Implementations keep (distances, tuples) in ``self._last`` for ``last_distances``.
        """
        raise NotImplementedError

    def state_dict(self) -> dict:
        """Seed and generator states, so a resumed run draws the same tuples."""
        return {
            "seed": self.seed,
            "generators": {k: g.get_state() for k, g in self._generators.items()},
        }

    def load_state_dict(self, state: dict) -> None:
        self.seed = state["seed"]
        self._generators = {}
        for key, gen_state in state["generators"].items():
            self.generator(torch.device(key)).set_state(gen_state)
