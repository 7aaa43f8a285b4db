"""Verdict rules: how a claim is decided from the 95% confidence intervals of paired differences.

Written before any run and never tuned to an outcome. Every comparison is between two methods of
one claim, on one measure, paired by seed (same data order, same initial weights), and the
difference d is oriented so that d > 0 means "a is better than b" (for a measure where lower is
better, d = b - a). With CI = the 95% Student-t interval of the mean of d over seeds
(dml.reproduce.stats):

- `better` ("a beats b"), margin m:
  holds if CI lies above 0; does not hold if CI's upper end is below m (the data rule out a
  gain of m or more: a is worse, or the two are equivalent within m); inconclusive otherwise.
- `not_worse` ("a does at least as well as b", or "stays comparable"), margin m:
  holds if CI lies above -m (a is at most m worse); does not hold if CI lies below -m (a is
  more than m worse); inconclusive otherwise.

A claim is a conjunction of comparisons: it holds if every comparison holds, does not hold if
any comparison does not hold, and is inconclusive otherwise. Fewer than two paired seeds give
no interval and so an inconclusive comparison. The intervals are not corrected for the number of
comparisons; the report says so.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from dml.reproduce.stats import Interval, paired_ci

HOLDS = "holds"
FAILS = "does not hold"
INCONCLUSIVE = "inconclusive at this scale"
VERDICTS = (HOLDS, FAILS, INCONCLUSIVE)
KINDS = ("better", "not_worse")

CLAIM_RULE = (
    "the claim holds if every comparison holds, does not hold if any comparison does not hold, "
    "and is inconclusive otherwise"
)


@dataclass(frozen=True)
class Comparison:
    """One test of a claim: method `a` against method `b` on `measure`, decided by `kind` with `margin`."""

    kind: str
    a: str
    b: str
    measure: str
    margin: float
    lower_is_better: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"comparison kind {self.kind!r} is not one of {KINDS}")
        if not self.margin >= 0:
            raise ValueError(f"comparison margin must be >= 0, got {self.margin}")

    @property
    def label(self) -> str:
        """'margin+dw vs triplet+dw' with the relation the claim states."""
        relation = ">" if self.kind == "better" else ">="
        return f"{self.a} {relation} {self.b}"

    @property
    def difference(self) -> str:
        """How d is formed, e.g. 'a - b' or 'b - a' (lower is better)."""
        return f"{self.b} - {self.a}" if self.lower_is_better else f"{self.a} - {self.b}"

    def rule(self) -> str:
        """The rule in words, with this comparison's margin."""
        d = f"d = {self.difference} ({self.measure}{', lower is better' if self.lower_is_better else ''})"
        if self.kind == "better":
            return (
                f"{d}: holds if the 95% CI of mean d lies above 0; does not hold if its upper end is "
                f"below {self.margin:g}; else inconclusive"
            )
        return (
            f"{d}: holds if the 95% CI of mean d lies above -{self.margin:g}; does not hold if it lies "
            f"below -{self.margin:g}; else inconclusive"
        )

    def oriented(self, values: Mapping[str, Mapping[int, float]]) -> Interval:
        """The CI of the paired difference d (oriented so that d > 0 favours `a`) over common seeds."""
        a, b = values.get(self.a, {}), values.get(self.b, {})
        return paired_ci(b, a) if self.lower_is_better else paired_ci(a, b)

    def decide(self, ci: Interval) -> str:
        """The verdict this comparison's rule gives for the interval `ci` of d."""
        if ci.n < 2 or not (math.isfinite(ci.lo) and math.isfinite(ci.hi)):
            return INCONCLUSIVE
        if self.kind == "better":
            if ci.lo > 0:
                return HOLDS
            if ci.hi < self.margin:
                return FAILS
            return INCONCLUSIVE
        if ci.lo > -self.margin:
            return HOLDS
        if ci.hi < -self.margin:
            return FAILS
        return INCONCLUSIVE


@dataclass(frozen=True)
class Outcome:
    """A decided comparison: its interval of d and its verdict."""

    comparison: Comparison
    interval: Interval
    verdict: str


def decide_all(
    comparisons: Iterable[Comparison], values: Mapping[str, Mapping[str, Mapping[int, float]]]
) -> list[Outcome]:
    """Each comparison decided on `values[measure][method][seed]`."""
    out = []
    for comparison in comparisons:
        ci = comparison.oriented(values.get(comparison.measure, {}))
        out.append(Outcome(comparison, ci, comparison.decide(ci)))
    return out


def combine(verdicts: Iterable[str]) -> str:
    """A claim's verdict from its comparisons' (CLAIM_RULE); no comparison at all is inconclusive."""
    verdicts = list(verdicts)
    if not verdicts:
        return INCONCLUSIVE
    if any(v == FAILS for v in verdicts):
        return FAILS
    if all(v == HOLDS for v in verdicts):
        return HOLDS
    return INCONCLUSIVE
