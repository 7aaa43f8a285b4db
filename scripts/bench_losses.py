"""Time sampler + loss, forward and backward, in dml and in pytorch-metric-learning, same process.

Every sampler config x every loss config at B=80, D=128 (16 classes x 5) and B=256, D=512
(64 classes x 4), on the same L2-normalised embeddings (gradients w.r.t. them). dml computes the batch's distance matrix once and shares it between sampler
and loss, as the training module does; pytorch-metric-learning runs its miner then its loss.
Calls of the two libraries alternate, and the median of the repeats is reported, so that
other jobs on the machine affect both alike. Prints a markdown table (and writes it with --out).

    .venv/bin/python scripts/bench_losses.py [--repeats 30] [--out bench_losses.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from pytorch_metric_learning import losses as pml_losses
from pytorch_metric_learning import miners as pml_miners
from pytorch_metric_learning.utils import loss_and_miner_utils as lmu

from dml.distances import pairwise_distance
from dml.losses import ContrastiveLoss, MarginLoss, MultiSimilarityLoss, TripletLoss
from dml.samplers import MultiSimilaritySampler, TupleSampler


class PMLRandomTriplets:
    """pytorch-metric-learning's own random triplet draw (it ships no miner for it)."""

    def __call__(self, embeddings: torch.Tensor, labels: torch.Tensor):
        return lmu.get_random_triplet_indices(labels)


# sampler config name -> (dml sampler, pytorch-metric-learning miner or None for all tuples)
SAMPLERS: dict[str, Callable[[], tuple]] = {
    "all": lambda: (TupleSampler("all", "all", seed=0), None),
    "random": lambda: (TupleSampler("all", "random", seed=0), PMLRandomTriplets()),
    "hard": lambda: (
        TupleSampler("all", "hard", seed=0),
        pml_miners.BatchEasyHardMiner(pos_strategy="all", neg_strategy="hard"),
    ),
    "semihard": lambda: (
        TupleSampler("all", "semihard", margin=0.2, seed=0),
        pml_miners.TripletMarginMiner(margin=0.2, type_of_triplets="semihard"),
    ),
    "distance_weighted": lambda: (
        TupleSampler("all", "distance_weighted", seed=0),
        pml_miners.DistanceWeightedMiner(cutoff=0.5, nonzero_loss_cutoff=1.4),
    ),
    "easy_positive": lambda: (
        TupleSampler("easy", "semihard", seed=0),
        pml_miners.BatchEasyHardMiner(pos_strategy="easy", neg_strategy="semihard"),
    ),
    "multi_similarity": lambda: (
        MultiSimilaritySampler(epsilon=0.1, seed=0),
        pml_miners.MultiSimilarityMiner(epsilon=0.1),
    ),
}

# loss config name -> (dml loss, pytorch-metric-learning loss)
LOSSES: dict[str, Callable[[], tuple]] = {
    "margin": lambda: (
        MarginLoss(margin=0.2, beta=1.2, learn_beta=True),
        pml_losses.MarginLoss(margin=0.2, beta=1.2, learn_beta=True, triplets_per_anchor="all"),
    ),
    "triplet": lambda: (
        TripletLoss(margin=0.2),
        pml_losses.TripletMarginLoss(margin=0.2, triplets_per_anchor="all"),
    ),
    "contrastive": lambda: (
        ContrastiveLoss(0.0, 1.0),
        pml_losses.ContrastiveLoss(pos_margin=0.0, neg_margin=1.0),
    ),
    "multi_similarity": lambda: (
        MultiSimilarityLoss(2.0, 50.0, 0.5),
        pml_losses.MultiSimilarityLoss(alpha=2.0, beta=50.0, base=0.5),
    ),
}


def dml_step(emb: torch.Tensor, labels: torch.Tensor, sampler, loss) -> None:
    """One training step's sampler + loss work in dml: one shared distance matrix."""
    distances = pairwise_distance(emb)
    tuples = sampler(emb, labels, distances.detach())
    loss(emb, labels, tuples, distances).backward()


def pml_step(emb: torch.Tensor, labels: torch.Tensor, miner, loss) -> None:
    tuples = miner(emb, labels) if miner is not None else None
    loss(emb, labels, tuples).backward()


def timed(fn: Callable[[], None]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of one call.

    CPU time counts only when this process runs, so it stays meaningful when other jobs share
    the cores (wall time then includes the time spent waiting for a core).
    """
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def bench_pair(sampler_name: str, loss_name: str, batch: int, dim: int, repeats: int) -> tuple:
    per_class = 5 if batch % 5 == 0 else 4
    g = torch.Generator().manual_seed(0)
    # the model's output: L2-normalised embeddings, the leaf that receives the gradient
    x = F.normalize(torch.randn(batch, dim, generator=g), dim=1).requires_grad_()
    labels = torch.arange(batch // per_class).repeat_interleave(per_class)
    sampler, miner = SAMPLERS[sampler_name]()
    dml_loss, pml_loss = LOSSES[loss_name]()

    def run_dml() -> None:
        x.grad = None
        dml_step(x, labels, sampler, dml_loss)

    def run_pml() -> None:
        x.grad = None
        pml_step(x, labels, miner, pml_loss)

    for _ in range(3):  # warm-up
        run_dml()
        run_pml()
    t_dml, t_pml = [], []
    for _ in range(repeats):
        t_dml.append(timed(run_dml))
        t_pml.append(timed(run_pml))

    def ms(samples: list[tuple[float, float]], which: int) -> float:
        return statistics.median(s[which] for s in samples) * 1e3

    return ms(t_dml, 0), ms(t_pml, 0), ms(t_dml, 1), ms(t_pml, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30, help="timed calls per library and pair")
    parser.add_argument("--sizes", default="80x128,256x512", help="comma-separated BxD")
    parser.add_argument("--samplers", default=",".join(SAMPLERS), help="comma-separated names")
    parser.add_argument("--losses", default=",".join(LOSSES), help="comma-separated names")
    parser.add_argument("--out", default=None, help="also write the markdown table to this file")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's own choice)"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = [
        f"sampler + loss, forward + backward, median of {args.repeats} calls in ms (CPU time of "
        f"the process, and wall time); {platform.machine()} CPU, {os.cpu_count()} cores, "
        f"load average {load:.1f} at start, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads",
        "",
        "| sampler | loss | B x D | dml CPU ms | PML CPU ms | speed-up (CPU) "
        "| dml wall ms | PML wall ms | speed-up (wall) |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    print("\n".join(lines), flush=True)
    for batch, dim in sizes:
        for sampler_name in args.samplers.split(","):
            for loss_name in args.losses.split(","):
                w_dml, w_pml, c_dml, c_pml = bench_pair(
                    sampler_name, loss_name, batch, dim, args.repeats
                )
                row = (
                    f"| {sampler_name} | {loss_name} | {batch} x {dim} | {c_dml:.2f} | "
                    f"{c_pml:.2f} | {c_pml / c_dml:.1f}x | {w_dml:.2f} | {w_pml:.2f} | "
                    f"{w_pml / w_dml:.1f}x |"
                )
                lines.append(row)
                print(row, flush=True)
    if args.out:
        tmp = args.out + ".tmp"
        with open(tmp, "w") as f:
            f.write("\n".join(lines) + "\n")
        os.replace(tmp, args.out)


if __name__ == "__main__":
    main()
