"""Verification rules at their edges: leave-one-out folds, similarities compared at float64
precision, a threshold between two similarities one float apart, and errors naming the side."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dml.metrics import verification_metrics
from dml.metrics.verification import best_threshold


def test_as_many_folds_as_pairs_is_leave_one_out():
    sims = np.array([0.9, 0.1, 0.7, 0.4, 0.8, 0.3, 0.2, 0.6])
    same = np.array([True, False, True, False, False, True, False, True])
    a = np.tile(np.float32([1.0, 0.0]), (len(sims), 1))
    b = np.stack([sims, np.sqrt(1 - sims**2)], 1).astype(np.float32)
    exact = b[:, 0].astype(np.float64)  # the cosines as the metric computes them
    out = verification_metrics(a, b, same, folds=len(sims))
    held_out = []
    for i in range(len(sims)):
        rest = np.arange(len(sims)) != i
        held_out.append((exact[i] > best_threshold(exact[rest], same[rest])) == same[i])
    assert out["accuracy"] == pytest.approx(np.mean(held_out))
    assert 0 < out["accuracy"] < 1  # a case where the held-out pairs matter
    with pytest.raises(ValueError, match=f"folds={len(sims) + 1} must be between 2"):
        verification_metrics(a, b, same, folds=len(sims) + 1)


def test_similarities_closer_than_float32_resolution_still_rank():
    """Rows [1, k * 2^-16] paired with themselves: cosines 1 + k^2 * 2^-32, all 1.0 in float32."""
    k = np.array([1, 4, 3, 5, 2, 6])
    a = np.stack([np.ones(len(k)), k * 2.0**-16], 1).astype(np.float32)
    same = k >= 4
    out = verification_metrics(a, a.copy(), same, folds=2)
    assert out["auc"] == 1.0
    assert out["accuracy"] == 1.0


@settings(max_examples=30, deadline=None)
@given(value=st.floats(-0.999, 0.999), same_above=st.booleans(), extra=st.integers(0, 3))
def test_two_similarities_one_float_apart_are_split(value, same_above, extra):
    """The threshold must separate adjacent floats even where their midpoint rounds to one of them."""
    low, high = value, np.nextafter(value, 1.0)
    # and a pair well below, labelled as the low ones: the split is not at the first value
    sims = np.array([low - 0.25] + [low] * (1 + extra) + [high])
    same = np.array([not same_above] * (2 + extra) + [same_above])
    t = best_threshold(sims, same)
    if same_above:
        assert np.all((sims > t) == same)
    else:  # "same" below "different": no threshold splits them; the lowest best one is kept
        assert np.mean((sims > t) == same) == max(np.mean(same), np.mean(~same))


def test_a_zero_row_on_either_side_names_its_side():
    a = np.tile(np.float32([1.0, 0.0]), (4, 1))
    zero = a.copy()
    zero[2] = 0
    same = np.array([True, False, True, False])
    with pytest.raises(ValueError, match="emb_a has 1 all-zero row"):
        verification_metrics(zero, a, same, folds=2)
    with pytest.raises(ValueError, match="emb_b has 1 all-zero row"):
        verification_metrics(a, zero, same, folds=2)
