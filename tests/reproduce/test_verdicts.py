"""Verdicts follow from the numbers by the stated rules: the comparison rules at their edges, and for each
of the seven claims, constructed results where it must hold, fail and be inconclusive."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dml.reproduce.claims import CLAIMS, L1, L2, M1, M2, W1, W2, W3, Claim
from dml.reproduce.stats import Interval
from dml.reproduce.verdicts import FAILS, HOLDS, INCONCLUSIVE, Comparison, combine, decide_all

SEEDS = range(5)


def _ci(lo: float, hi: float, n: int = 5) -> Interval:
    return Interval((lo + hi) / 2, lo, hi, n)


@pytest.mark.parametrize(
    "lo,hi,verdict",
    [
        (0.001, 0.05, HOLDS),  # above 0
        (0.001, 0.005, HOLDS),  # above 0 though below the margin: a is better
        (-0.02, -0.001, FAILS),  # below 0
        (-0.005, 0.009, FAILS),  # within the margin: no gain of 0.01 is left
        (-0.30, 0.009, FAILS),  # the upper end rules out a gain of 0.01
        (-0.005, 0.02, INCONCLUSIVE),  # straddles 0 and reaches past the margin
        (-0.05, 0.05, INCONCLUSIVE),
        (0.0, 0.05, INCONCLUSIVE),  # touching 0 is not above it
    ],
)
def test_better_rule(lo, hi, verdict):
    assert Comparison("better", "a", "b", "m", 0.01).decide(_ci(lo, hi)) == verdict


@pytest.mark.parametrize(
    "lo,hi,verdict",
    [
        (-0.009, 0.03, HOLDS),  # at most 0.01 worse
        (0.01, 0.03, HOLDS),
        (-0.05, -0.011, FAILS),  # more than 0.01 worse
        (-0.02, 0.01, INCONCLUSIVE),
        (-0.02, -0.005, INCONCLUSIVE),  # worse, but maybe by less than the margin
    ],
)
def test_not_worse_rule(lo, hi, verdict):
    assert Comparison("not_worse", "a", "b", "m", 0.01).decide(_ci(lo, hi)) == verdict


def test_fewer_than_two_pairs_is_inconclusive_whatever_the_mean():
    c = Comparison("better", "a", "b", "m", 0.01)
    assert c.decide(Interval(0.5, -math.inf, math.inf, 1)) == INCONCLUSIVE
    assert c.decide(Interval(math.nan, -math.inf, math.inf, 0)) == INCONCLUSIVE
    values = {"m": {"a": {0: 0.9}, "b": {0: 0.1}}}
    assert decide_all([c], values)[0].verdict == INCONCLUSIVE


def test_lower_is_better_turns_the_difference_around():
    c = Comparison("better", "a", "b", "drawdown", 0.01, lower_is_better=True)
    values = {"drawdown": {"a": {s: 0.0 for s in SEEDS}, "b": {s: 0.1 + 0.001 * s for s in SEEDS}}}
    (outcome,) = decide_all([c], values)
    assert outcome.interval.mean == pytest.approx(0.102) and outcome.verdict == HOLDS
    assert c.difference == "b - a"


def test_combine_is_a_conjunction():
    assert combine([HOLDS, HOLDS]) == HOLDS
    assert combine([HOLDS, INCONCLUSIVE]) == INCONCLUSIVE
    assert combine([HOLDS, INCONCLUSIVE, FAILS]) == FAILS
    assert combine([]) == INCONCLUSIVE


def test_bad_comparisons_are_refused():
    with pytest.raises(ValueError, match="kind"):
        Comparison("beats", "a", "b", "m", 0.01)
    with pytest.raises(ValueError, match="margin"):
        Comparison("better", "a", "b", "m", -0.01)


def test_rules_are_written_with_their_margin():
    assert "above 0" in Comparison("better", "a", "b", "map@r", 0.01).rule()
    assert "below 0.01" in Comparison("better", "a", "b", "map@r", 0.01).rule()
    assert "-0.02" in Comparison("not_worse", "a", "b", "map@r", 0.02).rule()


# ---- each claim, from constructed results ------------------------------------------------------
def _values(
    claim: Claim,
    base: dict[str, dict[str, float]],
    noisy: dict[tuple[str, str], float] | None = None,
):
    """values[measure][method][seed] = base + a seed effect shared by every method (+ a method's own noise).

    The shared seed effect is what pairing removes; `noisy[(measure, method)]` adds noise of that
    size to one method only, which widens the intervals of its comparisons.
    """
    rng = np.random.default_rng(0)
    shared = {s: 0.05 * rng.standard_normal() for s in SEEDS}
    values = {}
    for measure, by_method in base.items():
        values[measure] = {}
        for method, level in by_method.items():
            scale = (noisy or {}).get((measure, method), 0.001)
            values[measure][method] = {
                s: level + shared[s] + scale * rng.standard_normal() for s in SEEDS
            }
    return values


def _verdict(claim: Claim, values) -> str:
    outcomes = decide_all(claim.comparisons, values)
    # every comparison is decided on all five seeds: no verdict comes from a missing method
    assert all(o.interval.n == len(SEEDS) for o in outcomes), [
        (o.comparison.label, o.interval.n) for o in outcomes
    ]
    return combine(o.verdict for o in outcomes)


def _uniform(claim: Claim, level: float, **levels: float) -> dict[str, float]:
    names = {m for c in claim.comparisons for m in (c.a, c.b)}
    return {m: levels.get(m, level) for m in names}


# W1: distance weighted picks negatives over a wider range than random, hard and semi-hard
W1_HOLDS = {
    "negative_width": {"distance_weighted": 0.7, "random": 0.3, "hard": 0.2, "semihard": 0.25}
}
W1_FAILS = {
    "negative_width": {"distance_weighted": 0.3, "random": 0.6, "hard": 0.2, "semihard": 0.25}
}
W1_INCONCLUSIVE = (
    W1_HOLDS | {"negative_width": {**W1_HOLDS["negative_width"], "distance_weighted": 0.33}},
    {("negative_width", "distance_weighted"): 0.1},
)


def _w2(margin: float, dw: float) -> dict:
    losses = {"contrastive": 0.0, "triplet": 0.0, "margin": margin}
    samplers = {"random": 0.0, "semihard": 0.0, "dw": dw}
    return {
        "map@r": {
            f"{loss}+{s}": 0.5 + lv + sv
            for loss, lv in losses.items()
            for s, sv in samplers.items()
        }
    }


def _w3(ours_auc: float, ours_drawdown: float) -> dict:
    others = ("triplet+semihard", "contrastive+random")
    return {
        "auc_rounds": {"margin+dw": ours_auc, **{o: 0.55 for o in others}},
        "auc_time": {"margin+dw": ours_auc, **{o: 0.55 for o in others}},
        "drawdown": {"margin+dw": ours_drawdown, **{o: 0.05 for o in others}},
    }


def _l1(fine_easy: float, coarse_easy: float) -> dict:
    return {
        "fine/map@r": {
            "triplet+easy-pos": fine_easy,
            "triplet+all-pos": 0.80,
            "triplet+hard-pos": 0.78,
        },
        "coarse/map@r": {
            "triplet+easy-pos": coarse_easy,
            "triplet+all-pos": 0.40,
            "triplet+hard-pos": 0.41,
        },
    }


def _l2(easy: dict[str, float]) -> dict:
    losses = ("triplet", "margin", "multi_similarity")
    return {
        "fine/map@r": {
            **{f"{loss}+easy-pos": easy.get(loss, 0.9) for loss in losses},
            **{f"{loss}+all-pos": 0.8 for loss in losses},
        }
    }


CASES = {
    W1: (W1_HOLDS, W1_FAILS, W1_INCONCLUSIVE),
    # margin at least as good with every sampler, dw better for every loss / margin far worse /
    # dw's gain within noise of its size
    W2: (
        _w2(0.01, 0.05),
        _w2(-0.05, 0.05),
        (
            _w2(0.01, 0.02),
            {
                ("map@r", "margin+dw"): 0.03,
                ("map@r", "triplet+dw"): 0.03,
                ("map@r", "contrastive+dw"): 0.03,
            },
        ),
    ),
    W3: (
        _w3(0.65, 0.0),
        _w3(0.65, 0.2),
        (_w3(0.58, 0.0), {("auc_rounds", "margin+dw"): 0.05, ("auc_time", "margin+dw"): 0.05}),
    ),
    # EPS better at the fine level, comparable at the coarse level / EPS much worse at the coarse
    # level / EPS's fine-level gain lost in noise
    L1: (
        _l1(0.90, 0.40),
        _l1(0.90, 0.30),
        (_l1(0.82, 0.40), {("fine/map@r", "triplet+easy-pos"): 0.05}),
    ),
    L2: (
        _l2({}),
        _l2({"margin": 0.8}),
        (_l2({"multi_similarity": 0.81}), {("fine/map@r", "multi_similarity+easy-pos"): 0.05}),
    ),
    M1: (
        {"map@r": _uniform(M1, 0.6, **{"ms-loss+ms-mining": 0.7})},
        {"map@r": _uniform(M1, 0.6, **{"ms-loss+ms-mining": 0.7, "contrastive+ms-mining": 0.75})},
        (
            {"map@r": _uniform(M1, 0.6, **{"ms-loss+ms-mining": 0.62})},
            {("map@r", "ms-loss+ms-mining"): 0.05},
        ),
    ),
    M2: (
        {"map@r": {"ms d=512": 0.7, "ms d=64": 0.6}},
        {"map@r": {"ms d=512": 0.6, "ms d=64": 0.6}},
        ({"map@r": {"ms d=512": 0.62, "ms d=64": 0.6}}, {("map@r", "ms d=512"): 0.05}),
    ),
}


def test_every_claim_has_cases():
    assert set(CASES) == set(CLAIMS) and len(CLAIMS) == 7


@pytest.mark.parametrize("claim", CLAIMS, ids=lambda c: c.id)
def test_claim_holds_on_results_that_show_it(claim):
    assert _verdict(claim, _values(claim, CASES[claim][0])) == HOLDS


@pytest.mark.parametrize("claim", CLAIMS, ids=lambda c: c.id)
def test_claim_does_not_hold_on_results_that_contradict_it(claim):
    assert _verdict(claim, _values(claim, CASES[claim][1])) == FAILS


@pytest.mark.parametrize("claim", CLAIMS, ids=lambda c: c.id)
def test_claim_is_inconclusive_when_the_intervals_are_too_wide(claim):
    base, noisy = CASES[claim][2]
    values = _values(claim, base, noisy)
    outcomes = decide_all(claim.comparisons, values)
    assert FAILS not in {o.verdict for o in outcomes}
    assert _verdict(claim, values) == INCONCLUSIVE


@pytest.mark.parametrize("claim", CLAIMS, ids=lambda c: c.id)
def test_each_comparison_names_methods_and_measures_of_its_claim(claim):
    methods = {m.name for m in claim.methods}
    for c in claim.comparisons:
        assert c.measure in claim.measures
        if claim.kind != "negatives":  # W1 compares strategies on one trained method
            assert {c.a, c.b} <= methods
