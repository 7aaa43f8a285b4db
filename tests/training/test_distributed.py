"""DDP on CPU (gloo, 2 processes): the gathered global batch gives the loss and gradients of one
process on the concatenated batch, for every sampler config; eval shards gather without repeats."""

from __future__ import annotations

import functools
import os
import socket
from pathlib import Path

import hydra
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch import nn

from dml.config import config_dir
from dml.losses.build import build_loss
from dml.losses.memory import CrossBatchMemory
from dml.training.distributed import (
    all_gather_uneven,
    all_gather_with_grad,
)
from dml.training.module import DMLModule
from dml.training.objective import TrainingObjective
from dml.world import EvalShardSampler, shard_bounds

WORLD = 2
SIZES = (13, 11)  # uneven on purpose: ranks may hold different numbers of rows
IN_DIM, EMB_DIM = 12, 8
# every sampler config, each with a loss (margin's learnable beta checks the loss's own parameters)
CASES = {
    "all": "triplet",
    "random": "contrastive",
    "semihard": "triplet",
    "hard": "margin",
    "distance_weighted": "margin",
    "distance_weighted_rho": "margin",  # rho's swaps must be the same draws on every rank
    "easy_positive": "triplet",
    "multi_similarity": "multi_similarity",
}
MEMORY_CASE = ("hard", "margin", 16)  # XBM: sampler, loss, memory size; compared on the second step
# losses with class weights of their own (no sampler): proxies, class centres, per-class beta
PROXY_CASES = ("proxy_anchor", "soft_triple", "margin_per_class")


class TinyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(IN_DIM, 16), nn.Tanh())
        self.head = nn.Linear(16, EMB_DIM)
        self.embedding_dim = EMB_DIM

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.head(self.backbone(x)), dim=1)


class StepWrapper(nn.Module):
    """DDP wraps this, as Lightning wraps the LightningModule: forward runs the training step."""

    def __init__(self, module: DMLModule) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.module.training_step((x, y), 0)


def _node(group: str, name: str):
    return OmegaConf.load(config_dir() / group / f"{name}.yaml")


def _module(sampler_name: str, loss_name: str, memory_size: int = 0) -> DMLModule:
    torch.manual_seed(0)  # the same initial weights in every process
    sampler = hydra.utils.instantiate(_node("sampler", sampler_name))
    loss = build_loss(_node("loss", loss_name))
    memory = CrossBatchMemory(memory_size) if memory_size else None
    objective = TrainingObjective(loss, sampler, memory)
    return DMLModule(TinyNet(), objective, optimizer=functools.partial(torch.optim.SGD, lr=0.1))


def _proxy_module(loss_name: str) -> DMLModule:
    """A loss whose parameters are indexed by the 4 classes of _data, built as a run builds it."""
    torch.manual_seed(0)  # the same initial weights and proxies in every process
    loss = build_loss(_node("loss", loss_name), num_classes=4, embedding_dim=EMB_DIM)
    objective = TrainingObjective(loss, None, None, classes=torch.arange(4))
    return DMLModule(TinyNet(), objective, optimizer=functools.partial(torch.optim.SGD, lr=0.1))


def _data(step: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The global batch of a step: the concatenation of every rank's batch."""
    g = torch.Generator().manual_seed(100 + step)
    n = sum(SIZES)
    x = torch.randn(n, IN_DIM, generator=g)
    y = torch.arange(n) % 4
    return x, y[torch.randperm(n, generator=g)]


def _shard(t: torch.Tensor, rank: int) -> torch.Tensor:
    start = sum(SIZES[:rank])
    return t[start : start + SIZES[rank]]


def _grads(module: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.detach().clone() for n, p in module.named_parameters() if p.grad is not None}


def _worker(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    torch.set_num_threads(1)
    results = {}
    try:
        for sampler_name, loss_name in CASES.items():
            module = _module(sampler_name, loss_name)
            # the global RNG differs between ranks: the sampler seed must be shared
            torch.manual_seed(1000 + rank)
            module.on_fit_start()
            ddp = nn.parallel.DistributedDataParallel(StepWrapper(module))
            x, y = _data()
            loss = ddp(_shard(x, rank), _shard(y, rank))
            loss.backward()
            results[sampler_name] = {
                "loss": loss.detach(),
                "grads": _grads(module),
                "seed": module.sampler.seed,
            }

        for loss_name in PROXY_CASES:
            module = _proxy_module(loss_name)
            ddp = nn.parallel.DistributedDataParallel(StepWrapper(module))
            x, y = _data()
            loss = ddp(_shard(x, rank), _shard(y, rank))
            loss.backward()
            results[loss_name] = {"loss": loss.detach(), "grads": _grads(module)}

        sampler_name, loss_name, size = MEMORY_CASE
        module = _module(sampler_name, loss_name, memory_size=size)
        module.on_fit_start()
        ddp = nn.parallel.DistributedDataParallel(StepWrapper(module))
        for step in range(2):
            module.zero_grad()
            x, y = _data(step)
            loss = ddp(_shard(x, rank), _shard(y, rank))
            loss.backward()
        results["memory"] = {
            "loss": loss.detach(),
            "grads": _grads(module),
            "memory": module.memory.contents(),
        }

        # eval: contiguous shards without padding, gathered in rank order, give each item once
        n = 7
        shard = torch.tensor(list(EvalShardSampler(n, WORLD, rank)), dtype=torch.long)
        results["eval"] = all_gather_uneven(shard)
        # the differentiable gather: rows come back to their owners with the summed gradient
        mine = torch.full((SIZES[rank], 3), float(rank + 1), requires_grad=True)
        gathered = all_gather_with_grad(mine)
        (gathered.sum() * (rank + 1)).backward()  # rank r's loss weighs every row by r + 1
        results["gather"] = {"values": gathered.detach(), "grad": mine.grad}
    finally:
        dist.destroy_process_group()
    torch.save(results, Path(out) / f"rank{rank}.pt")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ddp_results(tmp_path_factory) -> list[dict]:
    out = tmp_path_factory.mktemp("ddp")
    mp.spawn(_worker, args=(_free_port(), str(out)), nprocs=WORLD, join=True)
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]


def _reference(module: DMLModule, steps: int = 1) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Loss and gradients of one process on the concatenated batch."""
    for step in range(steps):
        module.zero_grad()
        x, y = _data(step)
        loss = module.objective(module.model(x), y)
        loss.backward()
    return loss.detach(), _grads(module)


def test_every_sampler_config_is_a_case():
    assert sorted(CASES) == sorted(p.stem for p in (config_dir() / "sampler").glob("*.yaml"))


@pytest.mark.parametrize("sampler_name", list(CASES))
def test_ddp_loss_and_gradients_equal_one_process_on_the_global_batch(ddp_results, sampler_name):
    assert ddp_results[0][sampler_name]["seed"] == ddp_results[1][sampler_name]["seed"] is not None
    module = _module(sampler_name, CASES[sampler_name])
    module.sampler.seed = ddp_results[0][sampler_name]["seed"]
    loss, grads = _reference(module)
    for rank in range(WORLD):
        got = ddp_results[rank][sampler_name]
        torch.testing.assert_close(got["loss"], loss, atol=1e-5, rtol=1e-5)
        assert got["grads"].keys() == grads.keys()
        for name, g in grads.items():
            torch.testing.assert_close(
                got["grads"][name], g, atol=1e-5, rtol=1e-5, msg=f"{sampler_name}: {name}"
            )
    if CASES[sampler_name] == "margin":
        assert "loss.beta" in grads and grads["loss.beta"].abs() > 0


@pytest.mark.parametrize("loss_name", PROXY_CASES)
def test_ddp_class_weight_losses_equal_one_process_on_the_global_batch(ddp_results, loss_name):
    # every rank computes the loss of the gathered batch: the proxies' gradient is the same on every
    # rank, and DDP's average leaves it as one process's on the concatenated batch
    loss, grads = _reference(_proxy_module(loss_name))
    own = [n for n in grads if n.startswith("loss.")]
    assert own and all(grads[n].abs().sum() > 0 for n in own)
    for rank in range(WORLD):
        got = ddp_results[rank][loss_name]
        torch.testing.assert_close(got["loss"], loss, atol=1e-5, rtol=1e-5)
        assert got["grads"].keys() == grads.keys()
        for name, g in grads.items():
            torch.testing.assert_close(got["grads"][name], g, atol=1e-5, rtol=1e-5, msg=name)


def test_ddp_with_cross_batch_memory_equals_one_process(ddp_results):
    sampler_name, loss_name, size = MEMORY_CASE
    module = _module(sampler_name, loss_name, memory_size=size)
    loss, grads = _reference(module, steps=2)
    for rank in range(WORLD):
        got = ddp_results[rank]["memory"]
        torch.testing.assert_close(got["loss"], loss, atol=1e-5, rtol=1e-5)
        for name, g in grads.items():
            torch.testing.assert_close(got["grads"][name], g, atol=1e-5, rtol=1e-5)
        # every rank's memory holds the same global batch
        torch.testing.assert_close(got["memory"][1], ddp_results[0]["memory"]["memory"][1])


def test_eval_shards_gather_every_item_once(ddp_results):
    for rank in range(WORLD):
        assert ddp_results[rank]["eval"].tolist() == list(range(7))


def test_gather_with_grad_sends_the_summed_gradient_to_each_owner(ddp_results):
    for rank in range(WORLD):
        got = ddp_results[rank]["gather"]
        expected = torch.cat([torch.full((n, 3), float(r + 1)) for r, n in enumerate(SIZES)])
        assert torch.equal(got["values"], expected)
        # d(sum_r (r + 1) * sum(gathered)) / d(own rows) = 1 + 2 on every row
        assert torch.equal(got["grad"], torch.full((SIZES[rank], 3), 3.0))


@pytest.mark.parametrize("n", [0, 1, 5, 7, 10])
@pytest.mark.parametrize("world", [1, 2, 3, 4])
def test_shard_bounds_cover_each_item_once(n, world):
    items = [i for r in range(world) for i in EvalShardSampler(n, world, r)]
    assert items == list(range(n))
    sizes = [len(EvalShardSampler(n, world, r)) for r in range(world)]
    assert max(sizes) - min(sizes) <= 1 and shard_bounds(n, world, 0)[0] == 0


def test_single_process_gather_is_the_identity():
    x = torch.randn(3, 2, requires_grad=True)
    assert all_gather_with_grad(x) is x and all_gather_uneven(x).equal(x)
