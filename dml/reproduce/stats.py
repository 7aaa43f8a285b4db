"""Means with Student-t 95% confidence intervals over seeds, and paired (same-seed) differences.

One place for the interval every claim's table and verdict use: mean +- t(n-1, 0.975) * sd / sqrt(n),
sd with n - 1 degrees of freedom. With fewer than two values there is no interval (its bounds are
-inf and +inf), so no verdict rule can call such a comparison settled.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Interval:
    """The mean of `n` values and its two-sided confidence interval [lo, hi]."""

    mean: float
    lo: float
    hi: float
    n: int

    @property
    def half_width(self) -> float:
        return (self.hi - self.lo) / 2

    def format(self, digits: int = 4) -> str:
        """'0.6901 [0.6712, 0.7090]' (or the mean alone when there is no interval)."""
        if self.n == 0:
            return "n/a"
        if not math.isfinite(self.lo):
            return f"{self.mean:.{digits}f} [n={self.n}: no interval]"
        return f"{self.mean:.{digits}f} [{self.lo:.{digits}f}, {self.hi:.{digits}f}]"


def mean_ci(values: Iterable[float], confidence: float = CONFIDENCE) -> Interval:
    """Mean and two-sided Student-t confidence interval of `values` (NaNs are an error, not skipped)."""
    x = np.asarray(list(values), dtype=np.float64)
    if np.isnan(x).any():
        raise ValueError(f"mean_ci got NaN among {x.tolist()}; leave missing runs out instead")
    n = len(x)
    if n == 0:
        return Interval(math.nan, -math.inf, math.inf, 0)
    mean = float(x.mean())
    if n < 2:
        return Interval(mean, -math.inf, math.inf, n)
    sd = float(x.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n)


def paired_differences(a: Mapping[int, float], b: Mapping[int, float]) -> dict[int, float]:
    """{seed: a[seed] - b[seed]} over the seeds both have (runs of one seed share data order and start)."""
    return {seed: float(a[seed]) - float(b[seed]) for seed in sorted(set(a) & set(b))}


def paired_ci(
    a: Mapping[int, float], b: Mapping[int, float], confidence: float = CONFIDENCE
) -> Interval:
    """The confidence interval of the mean paired difference a - b over their common seeds."""
    return mean_ci(paired_differences(a, b).values(), confidence)
