import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from dml.metrics import verification_metrics
from dml.metrics.verification import best_threshold, tar_at_far


def pairs_with_similarities(sims):
    """Two unit vectors per pair whose cosine similarity is the given value."""
    sims = np.asarray(sims, dtype=np.float64)
    a = np.tile([1.0, 0.0], (len(sims), 1))
    b = np.stack([sims, np.sqrt(1 - sims**2)], 1)
    return a.astype(np.float32), b.astype(np.float32)


def hand_built_pairs():
    """A pairs file in LFW order: 10 folds of (one same pair, one different pair).

    Same pairs have similarity 0.8 except fold 0's (0.0, hard); different pairs 0.2.
    """
    sims, same = [], []
    for fold in range(10):
        sims += [0.0 if fold == 0 else 0.8, 0.2]
        same += [True, False]
    return sims, np.array(same)


def test_hand_built_pairs_known_answers():
    sims, same = hand_built_pairs()
    out = verification_metrics(*pairs_with_similarities(sims), same, folds=10)
    # test fold 0: threshold 0.5 from the others, its same pair (0.0) is missed -> 0.5
    # other folds: best threshold on their training folds is still 0.5 -> 1.0
    assert out["accuracy"] == pytest.approx(0.95)
    assert out["accuracy_std"] == pytest.approx(0.15)  # std of [0.5, 1 x 9]
    assert out["threshold"] == pytest.approx(0.5, abs=1e-6)
    assert out["auc"] == pytest.approx(0.9)  # 9 of 10 same pairs above every different pair
    assert out["tar@far=1e-3"] == pytest.approx(0.9)  # no false accept allowed: threshold 0.2
    assert set(out) == {"accuracy", "accuracy_std", "threshold", "auc", "tar@far=1e-3"}


def test_leave_one_out_is_the_largest_number_of_folds():
    # folds = number of pairs: each pair is scored by the threshold of all the others
    sims, same = hand_built_pairs()
    out = verification_metrics(*pairs_with_similarities(sims), same, folds=len(sims))
    # only the hard same pair (0.0, below every threshold of the others) is wrong
    assert out["accuracy"] == pytest.approx(19 / 20)


def test_folds_follow_file_order():
    sims, same = hand_built_pairs()
    # moving the hard pair to the last fold changes which fold scores 0.5, not the summary
    sims = sims[2:] + sims[:2]
    same = np.concatenate([same[2:], same[:2]])
    out = verification_metrics(*pairs_with_similarities(sims), same)
    assert out["accuracy"] == pytest.approx(0.95)
    # with 5 folds of 4 pairs the hard fold scores 3/4
    sims, same = hand_built_pairs()
    out = verification_metrics(*pairs_with_similarities(sims), same, folds=5)
    assert out["accuracy"] == pytest.approx((0.75 + 4) / 5)


def test_threshold_and_tar_on_ties_and_far_steps():
    sims = np.array([0.1, 0.2, 0.2, 0.9, 0.3])
    same = np.array([False, False, True, True, False])
    # candidates between distinct values: 0.15, 0.25, 0.6 ... ; 0.6 predicts only 0.9 -> 4/5
    assert best_threshold(sims, same) == pytest.approx(0.6)
    neg = np.linspace(-1, 0, 1000)
    sims = np.concatenate([neg, [0.5, -0.0005, -0.9990]])
    same = np.r_[np.zeros(1000, bool), np.ones(3, bool)]
    # FAR 1e-3 of 1000 negatives: one false accept allowed -> threshold = 2nd largest negative
    # (-0.001), so -0.0005 is accepted; at FAR 1e-4 the threshold is the largest negative (0)
    assert tar_at_far(sims, same, 1e-3) == pytest.approx(2 / 3)
    assert tar_at_far(sims, same, 1e-4) == pytest.approx(1 / 3)


def test_auc_matches_sklearn_with_ties():
    rng = np.random.default_rng(3)
    same = rng.random(400) < 0.5
    sims = np.round(np.where(same, 0.3, 0.0) + rng.normal(0, 0.3, 400), 1).clip(-0.99, 0.99)
    out = verification_metrics(*pairs_with_similarities(sims), same)
    a, b = pairs_with_similarities(sims)
    exact = (a.astype(np.float64) * b).sum(1) / np.linalg.norm(b.astype(np.float64), axis=1)
    assert out["auc"] == pytest.approx(roc_auc_score(same, exact), abs=1e-6)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"emb_b": np.ones((19, 2))}, "emb_a has 20 rows but emb_b has 19"),
        ({"emb_b": np.ones((20, 3))}, "dimension 3"),
        ({"same": np.ones(20, bool)}, "^verification needs both same and different pairs"),
        (
            {"same": np.arange(20)},
            r"^same must hold booleans \(or 0/1\): True where the two images show the same",
        ),
        ({"same": np.ones(5, bool)}, "5 labels but there are 20"),
        ({"folds": 1}, "folds=1"),
        ({"folds": 21}, "folds=21 must be between 2 and the number of pairs"),
        ({"emb_a": np.full((20, 2), np.nan)}, "NaN or inf"),
        ({"far": 0.0}, "far=0.0"),
    ],
)
def test_bad_input_is_a_clear_error(change, message):
    sims, same = hand_built_pairs()
    a, b = pairs_with_similarities(sims)
    args = {"emb_a": a, "emb_b": b, "same": same}
    args.update(change)
    with pytest.raises(ValueError, match=message):
        verification_metrics(**args)


# ---- brute-force oracles and properties (hypothesis) ----------------------------------------
PROPERTY = settings(max_examples=40, deadline=None)


def brute_best_threshold(sims, same):
    """Every midpoint between distinct values and one value beyond each end; the lowest best."""
    values = sorted(set(sims.tolist()))
    candidates = [values[0] - 1.0]
    candidates += [(a + b) / 2 for a, b in zip(values[:-1], values[1:], strict=True)]
    candidates += [values[-1] + 1.0]
    best, best_t = -1.0, None
    for t in candidates:  # increasing: a tie keeps the lower one
        accuracy = np.mean((sims > t) == same)
        if accuracy > best:
            best, best_t = accuracy, t
    return best_t


def brute_tar_at_far(sims, same, far):
    """The lowest threshold among -inf and the different pairs' values whose FAR is <= far."""
    neg, pos = sims[~same], sims[same]
    for t in [-np.inf, *sorted(set(neg.tolist()))]:
        if (neg > t).sum() <= far * len(neg) + 1e-9:
            return float((pos > t).mean())
    raise AssertionError("the largest negative always qualifies")


# similarities on a coarse grid, so that ties between pairs and with thresholds are common
grid_sims = st.lists(st.integers(-10, 10), min_size=2, max_size=40).map(
    lambda v: np.array(v, dtype=np.float64) / 10
)


@PROPERTY
@given(sims=grid_sims, data=st.data())
def test_best_threshold_is_the_lowest_accuracy_maximiser(sims, data):
    same = np.array(data.draw(st.lists(st.booleans(), min_size=len(sims), max_size=len(sims))))
    assert best_threshold(sims, same) == pytest.approx(brute_best_threshold(sims, same))


@PROPERTY
@given(sims=grid_sims, data=st.data(), far=st.sampled_from([1e-3, 0.1, 0.25, 0.29, 0.5, 0.9]))
def test_tar_at_far_matches_its_definition(sims, data, far):
    same = np.array(data.draw(st.lists(st.booleans(), min_size=len(sims), max_size=len(sims))))
    if same.all() or not same.any():
        same[0], same[-1] = True, False
    assert tar_at_far(sims, same, far) == pytest.approx(brute_tar_at_far(sims, same, far))


def test_threshold_ties_pick_the_lowest_and_a_pair_at_the_threshold_is_different():
    # accuracy 3/4 at both 0.2 and 0.6: the lower one
    sims = np.array([0.1, 0.3, 0.5, 0.7])
    assert best_threshold(sims, np.array([False, True, False, True])) == pytest.approx(0.2)
    # one value only: the candidates are value - 1 and value + 1
    assert best_threshold(np.array([0.4, 0.4]), np.array([True, True])) == pytest.approx(-0.6)
    assert best_threshold(np.array([0.4, 0.4]), np.array([False, False])) == pytest.approx(1.4)
    # FAR steps: 100 different pairs, far=0.29 allows 29 false accepts (29.000 - rounding)
    neg = np.arange(100) / 100
    sims = np.concatenate([neg, [0.705, 0.71, 0.7]])
    same = np.r_[np.zeros(100, bool), np.ones(3, bool)]
    # threshold = 30th largest negative (0.70): 0.705 and 0.71 are above it, 0.70 (a tie) is not
    assert tar_at_far(sims, same, 0.29) == pytest.approx(2 / 3)
    # a same pair tied with the threshold negative is not accepted
    assert tar_at_far(np.array([0.1, 0.2, 0.1]), np.array([False, False, True]), 0.5) == 0.0


def test_held_out_pair_exactly_at_the_threshold_counts_as_different():
    # fold 1 trains on (-0.6 different, 0.6 same): threshold exactly 0.0; fold 2 holds a
    # different pair at similarity 0.0 exactly ("same" iff sim > threshold: correct)
    a = np.tile([1.0, 0.0], (4, 1)).astype(np.float32)
    b = np.array([[-3, 4], [3, 4], [0, 1], [4, 3]], dtype=np.float32)  # -0.6, 0.6, 0.0, 0.8
    same = np.array([False, True, False, True])
    out = verification_metrics(a, b, same, folds=2)
    assert out["accuracy"] == 1.0 and out["accuracy_std"] == 0.0
    assert out["threshold"] == pytest.approx((0.0 + 0.4) / 2)
    assert out["auc"] == 1.0


@PROPERTY
@given(
    sims=st.lists(st.integers(-9, 9), min_size=6, max_size=30).map(lambda v: np.array(v) / 10),
    data=st.data(),
    folds=st.integers(2, 6),
    scale=st.sampled_from([0.25, 1.0, 32.0]),  # powers of two: scaling is exact
)
def test_accuracy_is_the_mean_over_folds_of_the_held_out_accuracy(sims, data, folds, scale):
    same = np.array(data.draw(st.lists(st.booleans(), min_size=len(sims), max_size=len(sims))))
    if same.all() or not same.any():
        same[0], same[-1] = True, False
    a, b = pairs_with_similarities(sims)
    out = verification_metrics(a * scale, b, same.astype(int), folds=folds)
    # b's rows are unit to float32 precision (kept as they are), a's exactly: the cosine is a.b,
    # so pairs on one grid value stay exactly tied, also with the midpoint thresholds
    exact = (a.astype(np.float64) * b).sum(1)
    accs, ts = [], []
    for test in np.array_split(np.arange(len(sims)), folds):
        train = np.setdiff1d(np.arange(len(sims)), test)
        t = brute_best_threshold(exact[train], same[train])
        ts.append(t)
        accs.append(np.mean((exact[test] > t) == same[test]))
    assert out["accuracy"] == pytest.approx(np.mean(accs), abs=1e-6)
    assert out["accuracy_std"] == pytest.approx(np.std(accs), abs=1e-6)
    assert out["threshold"] == pytest.approx(np.mean(ts), abs=1e-6)
    assert out["auc"] == pytest.approx(roc_auc_score(same, exact), abs=1e-6)


@pytest.mark.parametrize(
    ("far", "name"), [(1e-3, "1e-3"), (2.5e-4, "2.5e-4"), (0.1, "1e-1"), (1e-2, "1e-2")]
)
def test_far_names_in_short_scientific_notation(far, name):
    sims, same = hand_built_pairs()
    out = verification_metrics(*pairs_with_similarities(sims), same, far=far)
    assert f"tar@far={name}" in out


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"emb_a": np.ones(20)}, "emb_a must be a 2-D"),
        ({"emb_b": np.ones(20)}, "emb_b must be a 2-D"),
        ({"emb_b": np.zeros((20, 2))}, "emb_b has 20 all-zero row"),
        ({"same": np.ones((20, 2), bool)}, "same must be 1-D"),
        ({"far": 1.0}, r"far=1.0 must be in \(0, 1\)"),
    ],
)
def test_bad_input_names_the_argument(change, message):
    sims, same = hand_built_pairs()
    a, b = pairs_with_similarities(sims)
    args = {"emb_a": a, "emb_b": b, "same": same, **change}
    with pytest.raises(ValueError, match=message):
        verification_metrics(**args)
