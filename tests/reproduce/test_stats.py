"""The confidence interval every claim uses: Student t over seeds, against scipy's t interval; paired differences."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from dml.reproduce.stats import mean_ci, paired_ci, paired_differences


@pytest.mark.parametrize("n", [2, 3, 5, 8, 30])
@pytest.mark.parametrize("confidence", [0.95, 0.9])
def test_interval_equals_scipy_t_interval(n, confidence):
    x = np.random.default_rng(n).normal(0.6, 0.03, size=n)
    lo, hi = stats.t.interval(confidence, n - 1, loc=x.mean(), scale=stats.sem(x))
    ci = mean_ci(x.tolist(), confidence)
    assert ci.n == n
    assert ci.mean == pytest.approx(x.mean(), abs=1e-12)
    assert ci.lo == pytest.approx(lo, abs=1e-12) and ci.hi == pytest.approx(hi, abs=1e-12)


def test_one_value_has_no_interval_and_none_has_no_mean():
    one = mean_ci([0.5])
    assert one.mean == 0.5 and one.lo == -math.inf and one.hi == math.inf and one.n == 1
    assert "no interval" in one.format()
    empty = mean_ci([])
    assert empty.n == 0 and math.isnan(empty.mean) and empty.format() == "n/a"


def test_equal_values_give_a_zero_width_interval():
    ci = mean_ci([0.3, 0.3, 0.3])
    assert ci.lo == pytest.approx(0.3) and ci.hi == pytest.approx(0.3)


def test_nan_is_an_error_not_a_silent_skip():
    with pytest.raises(ValueError, match="NaN"):
        mean_ci([0.1, float("nan")])


def test_paired_differences_use_the_common_seeds_only():
    a = {0: 0.7, 1: 0.8, 2: 0.9}
    b = {1: 0.5, 2: 0.6, 3: 0.1}
    assert paired_differences(a, b) == pytest.approx({1: 0.3, 2: 0.3})
    ci = paired_ci(a, b)
    assert ci.n == 2 and ci.mean == pytest.approx(0.3)


def test_pairing_removes_the_seed_effect():
    """Two methods that differ by 0.01 on every seed while seeds differ by 0.2: the paired CI is tight."""
    seeds = {s: 0.2 * s for s in range(5)}
    a = {s: v + 0.01 for s, v in seeds.items()}
    unpaired_a, unpaired_b = mean_ci(a.values()), mean_ci(seeds.values())
    assert unpaired_a.lo < unpaired_b.hi  # the unpaired intervals overlap
    ci = paired_ci(a, seeds)
    assert ci.lo == pytest.approx(0.01) and ci.hi == pytest.approx(0.01)
