"""Histogram of the distances of the negatives each negative strategy picks (Wu et al. 2017, Fig. 3b).

A fixed, seeded set of embeddings: class centres on the unit sphere with members scattered
around them, so that negative distances spread over [0, 2] as in a network part-way through
training. Each strategy samples many times from the same embeddings; its histogram is drawn over
the distribution of all negative distances of the batch (what uniform sampling sees).

    .venv/bin/python scripts/plot_sampled_distances.py --out sampled_distances.png
"""

from __future__ import annotations

import argparse
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from dml.distances import pairwise_distance  # noqa: E402
from dml.samplers import TupleSampler  # noqa: E402
from dml.samplers.strategies import NEGATIVE_STRATEGIES  # noqa: E402
from dml.samplers.tuples import class_masks  # noqa: E402


def clustered_embeddings(
    classes: int, per_class: int, dim: int, spread: float, seed: int, centre_dim: int = 8
) -> tuple[torch.Tensor, torch.Tensor]:
    """L2-normalised embeddings: members = class centre + Gaussian noise of scale `spread`.

    Centres lie in a `centre_dim`-dimensional subspace, so classes sit at varied distances (in
    all D dimensions, random centres would all be ~sqrt(2) apart).
    """
    g = torch.Generator().manual_seed(seed)
    centres = torch.zeros(classes, dim)
    centres[:, :centre_dim] = torch.randn(classes, centre_dim, generator=g)
    centres = torch.nn.functional.normalize(centres, dim=1)
    labels = torch.arange(classes).repeat_interleave(per_class)
    noise = torch.randn(len(labels), dim, generator=g) * spread / dim**0.5
    return torch.nn.functional.normalize(centres[labels] + noise, dim=1), labels


def sampled_negative_distances(
    strategy: str, x: torch.Tensor, labels: torch.Tensor, calls: int, seed: int
) -> np.ndarray:
    """Distances (anchor, negative) of every triplet the strategy picks over `calls` calls."""
    sampler = TupleSampler("all", strategy, seed=seed)
    distances = pairwise_distance(x)
    out = []
    for _ in range(calls if strategy in ("random", "distance_weighted") else 1):
        sampler(x, labels, distances)
        out.append(sampler.last_distances["negative"].numpy())
    return np.concatenate(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="sampled_distances.png", help="PNG file to write")
    parser.add_argument("--dim", type=int, default=32, help="embedding dimension D")
    parser.add_argument("--classes", type=int, default=32)
    parser.add_argument("--per-class", type=int, default=5)
    parser.add_argument("--spread", type=float, default=0.8, help="within-class noise scale")
    parser.add_argument(
        "--centre-dim", type=int, default=8, help="dimension spanned by the centres"
    )
    parser.add_argument("--calls", type=int, default=200, help="sampler calls of random strategies")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)  # small matrices; avoids thread contention on a shared machine

    g = torch.Generator().manual_seed(args.seed)
    labels = torch.arange(args.classes).repeat_interleave(args.per_class)
    sets = {
        "uniform on the sphere (negatives follow q(d))": (
            torch.nn.functional.normalize(torch.randn(len(labels), args.dim, generator=g), dim=1),
            labels,
        ),
        "clustered classes (as part-way through training)": clustered_embeddings(
            args.classes, args.per_class, args.dim, args.spread, args.seed, args.centre_dim
        ),
    }
    bins = np.linspace(0.0, 2.0, 81)
    strategies = list(NEGATIVE_STRATEGIES)
    fig, axes = plt.subplots(
        len(strategies), len(sets), figsize=(6 * len(sets), 1.9 * len(strategies)), sharex=True
    )
    for col, (title, (x, y)) in enumerate(sets.items()):
        distances = pairwise_distance(x)
        _, negative = class_masks(y)
        all_negative = distances[negative].numpy()
        for row, strategy in enumerate(strategies):
            ax = axes[row, col]
            picked = sampled_negative_distances(strategy, x, y, args.calls, args.seed)
            ax.hist(all_negative, bins=bins, density=True, color="0.8", label="all negatives")
            ax.hist(
                picked,
                bins=bins,
                density=True,
                histtype="step",
                lw=2,
                label=f"{strategy} ({len(picked)})",
            )
            ax.axvline(1.4, color="r", ls=":", lw=1)
            ax.legend(loc="upper left", fontsize=8, frameon=False)
            if col == 0:
                ax.set_ylabel("density")
        axes[0, col].set_title(title, fontsize=10)
        axes[-1, col].set_xlabel("anchor-negative distance d")
    fig.suptitle(
        f"Distances of the negatives each strategy picks; D={args.dim}, "
        f"{args.classes} classes x {args.per_class}, positives: all (dotted: 1.4 cutoff)",
        fontsize=10,
    )
    fig.tight_layout()
    tmp = args.out + ".tmp.png"
    fig.savefig(tmp, dpi=90)
    os.replace(tmp, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
