import numpy as np
import pytest
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
        ({"same": np.ones(20, bool)}, "both same and different pairs"),
        ({"same": np.arange(20)}, "booleans"),
        ({"same": np.ones(5, bool)}, "5 labels but there are 20"),
        ({"folds": 1}, "folds=1"),
        ({"folds": 21}, "folds=21"),
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
