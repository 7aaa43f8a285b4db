"""The training objective: one distance matrix -> tuple sampler -> loss, with a cross-batch memory
as one more source of reference embeddings and labels.

Anchors are the (gathered) batch; references are the batch followed by the memory's stored
embeddings (none without XBM). One matrix of anchor-to-reference distances is computed per step:
the sampler picks tuples on it detached, the loss reads it with gradients. Each step publishes a
`StepRecord` (detached distances, labels, picked tuples, the loss's numbers) that the training
diagnostics read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from dml.distances import pairwise_distance
from dml.losses.base import TupleLoss
from dml.losses.foreign import ForeignLoss
from dml.losses.memory import CrossBatchMemory, sample_candidates
from dml.samplers.base import BaseSampler
from dml.samplers.tuples import Tuples, check_tuples


@dataclass(frozen=True)
class StepRecord:
    """What one training step computed, detached: for diagnostics, never for gradients.

    distances: [B, N] anchors (the batch) to references (the batch first, then the memory), or
    None when neither sampler nor loss needed them; ref_labels [N]; tuples: what the sampler
    picked (None: the loss used every valid tuple); dim: the embedding size; stats: the loss's
    numbers (beta, active share); histograms: the loss's vectors (the margin loss's per-class beta).
    """

    labels: Tensor
    ref_labels: Tensor
    dim: int
    distances: Tensor | None = None
    tuples: Tuples | None = None
    stats: dict[str, Tensor] = field(default_factory=dict)
    histograms: dict[str, Tensor] = field(default_factory=dict)

    def batch_pairs(self) -> tuple[Tensor, Tensor] | None:
        """(distances [B, B] among the batch's items, labels [B]), or None without distances."""
        if self.distances is None:
            return None
        return self.distances[:, : len(self.labels)], self.labels

    def picked(self) -> dict[str, Tensor]:
        """Distances of the picked tuples by kind: {"positive": d_ap, "negative": d_an}."""
        if self.distances is None or self.tuples is None:
            return {}
        if len(self.tuples) == 3:
            a, p, n = self.tuples
            return {"positive": self.distances[a, p], "negative": self.distances[a, n]}
        pa, p, na, n = self.tuples
        return {"positive": self.distances[pa, p], "negative": self.distances[na, n]}


class TrainingObjective:
    """loss(sampler(distances)) of a batch against its references, in float32.

    loss: a dml TupleLoss, or any loss with pytorch-metric-learning's call convention (wrapped
    in `ForeignLoss`). sampler: a dml sampler (BaseSampler: it samples on the shared matrix
    and, with a memory, over batch + memory candidates), a foreign miner called as
    `sampler(embeddings, labels)`, or None (the loss uses every valid tuple). memory: a
    CrossBatchMemory (XBM) whose stored embeddings join the references; the batch is enqueued
    after its loss.

    classes: the sorted labels of the training classes, for a loss that indexes its parameters by
    class (proxies, per-class beta, built with num_classes = len(classes)): the loss sees each
    label as its position in `classes` (0..C-1), whatever the dataset's label values (a
    class-disjoint fold trains on classes 25..99, say). Sampler and memory keep the labels.

    A plain object: the LightningModule owns `loss` and `memory` as submodules, so their
    parameters train, move to the device and are saved under `loss.*` and `memory.*`.
    """

    def __init__(
        self,
        loss: Any,
        sampler: Any | None = None,
        memory: CrossBatchMemory | None = None,
        classes: Tensor | None = None,
    ) -> None:
        self.loss = loss
        self.sampler = sampler
        self.memory = memory
        self.classes = None if classes is None else torch.as_tensor(classes).long().sort().values
        self._foreign = None if isinstance(loss, TupleLoss) else ForeignLoss(loss)
        self.last_step: StepRecord | None = None

    def class_index(self, labels: Tensor) -> Tensor:
        """Each label's position among the training classes (the labels themselves without
        `classes`); a label outside them is an error naming it."""
        if self.classes is None:
            return labels
        classes = self.classes.to(labels.device)
        index = torch.searchsorted(classes, labels).clamp_max(len(classes) - 1)
        unknown = classes[index] != labels
        if bool(unknown.any()):
            raise ValueError(
                f"label {int(labels[unknown][0])} is not one of the {len(classes)} training classes the "
                "loss was built for (its num_classes); train on the train split's labels"
            )
        return index

    def strategies(self) -> dict[str, str]:
        """{'positive': .., 'negative': ..}: the strategies the sampler uses ({} without one)."""
        if self.sampler is None:
            return {}
        if isinstance(self.sampler, BaseSampler):
            return dict(self.sampler.strategies)
        name = type(self.sampler).__name__
        return {"positive": name, "negative": name}

    def __call__(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        """The loss of the batch [B, D] with labels [B]; float32 with autocast off, so bf16/fp16
        training keeps exact sampling and loss."""
        with torch.autocast(embeddings.device.type, enabled=False):
            return self._step(embeddings.float(), labels)

    def references(self, embeddings: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """The batch followed by the memory's stored embeddings and labels (the batch alone without)."""
        stored = self.memory.contents() if self.memory is not None else None
        if stored is None:
            return embeddings, labels
        return torch.cat([embeddings, stored[0].to(embeddings)]), torch.cat(
            [labels, stored[1].to(labels)]
        )

    def _distances(self, embeddings: Tensor, ref: Tensor) -> Tensor | None:
        with_grad = isinstance(self.loss, TupleLoss)  # dml losses read the shared matrix
        if self.memory is not None:  # [B, N] against the candidates, also while the memory is empty
            if with_grad:
                return pairwise_distance(embeddings, ref)
            with torch.no_grad():
                return pairwise_distance(embeddings.detach(), ref.detach())
        if with_grad or isinstance(self.sampler, BaseSampler):
            return pairwise_distance(embeddings)
        return None

    def _sample(
        self, embeddings: Tensor, labels: Tensor, distances: Tensor | None, ref_labels: Tensor
    ) -> Tuples | None:
        if self.memory is not None:
            # every valid (anchor, candidate) pair without a sampler; the sampler row by row over them
            return sample_candidates(
                self.sampler, distances.detach(), labels, ref_labels, embeddings.shape[1]
            )
        if self.sampler is None:
            return None
        if isinstance(self.sampler, BaseSampler):
            with torch.no_grad():
                return self.sampler.sample(distances.detach(), labels, embeddings.shape[1])
        tuples = self.sampler(embeddings.detach(), labels)  # a foreign miner
        check_tuples(tuples, len(labels))
        return tuples

    def _step(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        ref, ref_labels = self.references(embeddings, labels)
        distances = self._distances(embeddings, ref)
        tuples = self._sample(embeddings, labels, distances, ref_labels)
        if isinstance(self.loss, TupleLoss):
            value = self.loss.from_distances(distances, self.class_index(labels), tuples)
            stats, histograms = self.loss.log_stats(), self.loss.log_histograms()
        else:
            references = (ref, self.class_index(ref_labels)) if self.memory is not None else None
            value = self._foreign(embeddings, self.class_index(labels), tuples, references)
            stats, histograms = {}, {}
        self.last_step = StepRecord(
            labels=labels.detach(),
            ref_labels=ref_labels.detach(),
            dim=int(embeddings.shape[1]),
            distances=None if distances is None else distances.detach(),
            tuples=tuples,
            stats=stats,
            histograms=histograms,
        )
        if self.memory is not None:
            self.memory.enqueue(embeddings, labels)
        return value


def loss_parameters(loss: Any) -> list[nn.Parameter]:
    """The loss's own trainable parameters (the margin loss's beta); [] for a parameter-free loss."""
    return [p for p in loss.parameters() if p.requires_grad] if isinstance(loss, nn.Module) else []
