"""Cross-batch memory (XBM): queue contents, candidate tuples without self-pairs, equality with a
larger batch whose extra items are frozen, and the training module's use of it."""

from __future__ import annotations

import copy
import functools

import hydra
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from dml.config import config_dir
from dml.distances import pairwise_distance
from dml.losses import ContrastiveLoss, MarginLoss, MultiSimilarityLoss, TripletLoss
from dml.losses.memory import CrossBatchMemory, sample_candidates
from dml.samplers.tuples import Pairs, Triplets, to_pairs
from dml.training.module import DMLModule
from dml.training.objective import TrainingObjective

SAMPLERS = sorted(p.stem for p in (config_dir() / "sampler").glob("*.yaml"))
DETERMINISTIC = ["all", "semihard", "hard", "easy_positive", "multi_similarity"]


def _sampler(name: str, seed: int = 0):
    node = OmegaConf.load(config_dir() / "sampler" / f"{name}.yaml")
    node.seed = seed
    return hydra.utils.instantiate(node)


def _batch(n: int, classes: int, dim: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(n, dim, generator=g), dim=1), torch.randint(
        0, classes, (n,), generator=g
    )


def test_queue_keeps_the_last_size_rows_in_fifo_order():
    memory = CrossBatchMemory(5)
    assert len(memory) == 0 and memory.contents() is None
    seen = []
    for step in range(4):
        emb = torch.full((3, 2), float(step)) + torch.arange(3.0).view(3, 1) / 10
        labels = torch.arange(3) + 10 * step
        memory.enqueue(emb, labels)
        seen.extend(labels.tolist())
        stored_emb, stored_labels = memory.contents()
        assert len(memory) == min(5, len(seen))
        assert sorted(stored_labels.tolist()) == sorted(seen[-5:])
        # each label stays with its own embedding
        for e, y in zip(stored_emb, stored_labels, strict=True):
            assert e[0].item() == pytest.approx(y.item() // 10 + (y.item() % 10) / 10)
    assert memory.contents()[0].dtype == torch.float32


def test_batch_larger_than_memory_keeps_its_last_rows_and_start_delays_filling():
    memory = CrossBatchMemory(4, start=1)
    memory.enqueue(torch.zeros(6, 3), torch.arange(6))
    assert len(memory) == 0  # the first step is warm-up
    memory.enqueue(torch.randn(6, 3), torch.arange(6))
    assert sorted(memory.contents()[1].tolist()) == [2, 3, 4, 5]


def test_memory_is_not_a_buffer_but_travels_in_the_state_dict():
    memory = CrossBatchMemory(8)
    memory.enqueue(torch.randn(5, 4), torch.arange(5))
    assert not list(memory.buffers())  # DDP does not re-broadcast it every step
    restored = CrossBatchMemory(8)
    restored.load_state_dict(memory.state_dict())
    assert (
        torch.equal(restored.contents()[0], memory.contents()[0])
        and restored.ptr == memory.ptr == 5
    )


@pytest.mark.parametrize("name", SAMPLERS)
def test_candidate_tuples_are_valid_and_hold_no_self_pairs(name):
    emb, labels = _batch(12, 3)
    mem, mem_labels = _batch(20, 3, seed=1)
    ref, ref_labels = torch.cat([emb, mem]), torch.cat([labels, mem_labels])
    distances = pairwise_distance(emb, ref)
    sampler = _sampler(name)
    pa, p, na, n = to_pairs(sample_candidates(sampler, distances, labels, ref_labels, emb.shape[1]))
    assert pa.numel() and na.numel()
    assert int(pa.max()) < 12 and int(na.max()) < 12  # anchors are the batch
    assert bool((p != pa).all()) and bool((n != na).all())  # never the anchor itself
    assert bool((labels[pa] == ref_labels[p]).all())
    if getattr(sampler, "rho", 0.0) == 0.0:  # rho-regularisation swaps some negatives for positives
        assert bool((labels[na] != ref_labels[n]).all())
    assert bool((p >= 12).any() or (n >= 12).any())  # the memory is used


@pytest.mark.parametrize("name", SAMPLERS)
def test_candidate_sampling_without_memory_is_the_sampler_itself(name):
    """The rectangular adaptor, on a batch alone, draws the sampler's own tuples."""
    emb, labels = _batch(16, 4)
    distances = pairwise_distance(emb)
    ours = sample_candidates(_sampler(name), distances, labels, labels, emb.shape[1])
    theirs = _sampler(name)(emb, labels, distances=distances)
    assert type(ours) is type(theirs)
    for a, b in zip(ours, theirs, strict=True):
        assert torch.equal(a, b)


def _restrict(tuples, batch: int):
    """Tuples of a larger batch whose anchor lies in its first `batch` items."""
    if isinstance(tuples, Triplets):
        keep = tuples.anchor < batch
        return Triplets(*(t[keep] for t in tuples))
    pa, p, na, n = tuples
    return Pairs(pa[pa < batch], p[pa < batch], na[na < batch], n[na < batch])


LOSSES = {
    "triplet": TripletLoss,
    "contrastive": ContrastiveLoss,
    "margin": functools.partial(MarginLoss, learn_beta=True),
    "multi_similarity": MultiSimilarityLoss,
}


@pytest.mark.parametrize("loss_name", list(LOSSES))
@pytest.mark.parametrize("name", DETERMINISTIC)
def test_memory_loss_equals_the_larger_batch_with_frozen_extra_items(name, loss_name):
    """Batch X with memory Y is the batch [X; Y.detach()] with anchors restricted to X."""
    x0, labels = _batch(10, 3)
    y, y_labels = _batch(14, 3, seed=1)
    x = x0.clone().requires_grad_(True)
    memory = CrossBatchMemory(32)
    memory.enqueue(y, y_labels)
    loss = LOSSES[loss_name]()
    value = TrainingObjective(loss, _sampler(name), memory)(x, labels)
    value.backward()

    x_ref = x0.clone().requires_grad_(True)
    z, z_labels = torch.cat([x_ref, y]), torch.cat([labels, y_labels])
    distances = pairwise_distance(z)
    tuples = _restrict(_sampler(name)(z, z_labels, distances=distances.detach()), 10)
    expected = LOSSES[loss_name]()(z, z_labels, tuples, distances=distances)
    if loss_name == "multi_similarity":
        # its mean runs over every anchor of the larger batch; the 14 memory anchors add 0
        expected = expected * 24 / 10
    expected.backward()
    torch.testing.assert_close(value, expected, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(x.grad, x_ref.grad, atol=1e-6, rtol=1e-5)


def _module(name: str, loss, memory_size: int, seed: int = 0) -> DMLModule:
    model = torch.nn.Linear(6, 8)
    memory = CrossBatchMemory(memory_size) if memory_size else None
    objective = TrainingObjective(loss, _sampler(name, seed), memory)
    return DMLModule(model, objective, optimizer=functools.partial(torch.optim.SGD, lr=0.1))


@pytest.mark.parametrize("name", SAMPLERS)
def test_module_with_empty_memory_equals_plain_loss_then_enqueues_the_batch(name):
    emb, labels = _batch(16, 4)
    plain = _module(name, TripletLoss(), 0).objective(emb, labels)
    module = _module(name, TripletLoss(), 64)
    first = module.objective(emb, labels)
    torch.testing.assert_close(first, plain, atol=1e-6, rtol=1e-5)
    stored, stored_labels = module.memory.contents()
    assert (
        torch.equal(stored, emb) and torch.equal(stored_labels, labels) and not stored.requires_grad
    )
    second = module.objective(*_batch(16, 4, seed=3))
    assert torch.isfinite(second) and len(module.memory) == 32


def test_module_memory_is_in_the_checkpoint_state_dict():
    module = _module("hard", MarginLoss(), 8)
    module.objective(*_batch(6, 2))
    fresh = _module("hard", MarginLoss(), 8)
    fresh.load_state_dict(module.state_dict())
    assert torch.equal(fresh.memory.contents()[1], module.memory.contents()[1])


def test_pytorch_metric_learning_loss_gets_the_memory_as_reference_set():
    from pytorch_metric_learning.losses import TripletMarginLoss

    x, labels = _batch(10, 3)
    memory = CrossBatchMemory(32)
    memory.enqueue(*_batch(14, 3, seed=1))
    ours = TrainingObjective(TripletLoss(margin=0.2), _sampler("hard"), copy.deepcopy(memory))(
        x, labels
    )
    theirs = TrainingObjective(TripletMarginLoss(margin=0.2), _sampler("hard"), memory)(x, labels)
    torch.testing.assert_close(theirs, ours, atol=1e-5, rtol=1e-5)


def test_a_sampler_without_reference_labels_is_refused_by_name():
    class Foreign:
        def sample(self, distances, labels, dim):
            return None

    emb, labels = _batch(4, 2)
    with pytest.raises(TypeError, match="Foreign.*memory_size=0"):
        sample_candidates(Foreign(), pairwise_distance(emb), labels, labels, 16)


def test_bad_sizes_name_the_option():
    with pytest.raises(ValueError, match="memory_size"):
        CrossBatchMemory(0)
    with pytest.raises(ValueError, match="memory_start"):
        CrossBatchMemory(4, start=-1)


@settings(max_examples=40, deadline=None)
@given(
    size=st.integers(1, 6),
    start=st.integers(0, 2),
    batches=st.lists(st.integers(1, 8), min_size=1, max_size=6),
    stop=st.integers(-1, 6),
)
def test_memory_holds_the_last_rows_oldest_overwritten_first_and_restores_exactly(
    size, start, batches, stop
):
    """Row k of the stream is (k, -k) with label k: after each step the memory holds the last
    `size` rows enqueued after the warm-up, each with its own label; a memory restored from the
    state dict at any step (before the first one too) continues identically."""
    memory, restored = CrossBatchMemory(size, start=start), None
    if stop == -1:
        restored = CrossBatchMemory(size, start=start)
        restored.load_state_dict(memory.state_dict())
    stream, kept = 0, []
    for step, n in enumerate(batches):
        ids = torch.arange(stream, stream + n)
        stream += n
        batch = torch.stack([ids.float(), -ids.float()], dim=1)
        for m in (memory, restored):
            if m is not None:
                m.enqueue(batch, ids)
        if step >= start:
            kept = (kept + ids.tolist())[-size:]
        if not kept:
            assert len(memory) == 0 and memory.contents() is None
        else:
            emb, labels = memory.contents()
            assert len(memory) == len(kept) and sorted(labels.tolist()) == kept
            assert torch.equal(emb, torch.stack([labels.float(), -labels.float()], dim=1))
            # the next row written is the oldest one (a ring buffer): rotated, oldest first
            order = labels.roll(-memory.ptr) if len(kept) == size else labels
            assert order.tolist() == kept
        if restored is not None:
            assert restored.get_extra_state().keys() == memory.get_extra_state().keys()
            for a, b in zip(restored.contents() or (), memory.contents() or (), strict=True):
                assert torch.equal(a, b)
        if step == stop:
            restored = CrossBatchMemory(size, start=start)
            restored.load_state_dict(memory.state_dict())
            assert (restored.steps, restored.count, restored.ptr) == (
                memory.steps,
                memory.count,
                memory.ptr,
            )


def test_a_memory_of_one_row_keeps_the_last_item():
    memory = CrossBatchMemory(1)
    memory.enqueue(torch.ones(1, 2), torch.tensor([3]))
    assert memory.contents()[1].tolist() == [3]
    memory.enqueue(torch.zeros(2, 2), torch.tensor([4, 5]))
    assert memory.contents()[1].tolist() == [5] and len(memory) == 1


def test_without_a_sampler_every_candidate_pair_is_used():
    """Positives: same class, not the anchor itself (an older copy in the memory is one);
    negatives: every other class, in batch and memory."""
    emb, labels = _batch(6, 3)
    mem, mem_labels = _batch(5, 3, seed=1)
    ref_labels = torch.cat([labels, mem_labels])
    distances = pairwise_distance(emb, torch.cat([emb, mem]))
    tuples = sample_candidates(None, distances, labels, ref_labels, emb.shape[1])
    assert isinstance(tuples, Pairs)
    pa, p, na, n = tuples
    positives = {
        (a, c) for a in range(6) for c in range(11) if labels[a] == ref_labels[c] and a != c
    }
    negatives = {(a, c) for a in range(6) for c in range(11) if labels[a] != ref_labels[c]}
    assert sorted(zip(pa.tolist(), p.tolist(), strict=True)) == sorted(positives)
    assert sorted(zip(na.tolist(), n.tolist(), strict=True)) == sorted(negatives)


def test_an_object_without_sample_is_refused_as_a_sampler():
    emb, labels = _batch(4, 2)
    with pytest.raises(TypeError, match="not object; or set xbm.memory_size=0"):
        sample_candidates(object(), pairwise_distance(emb), labels, labels, 16)
