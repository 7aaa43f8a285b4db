"""Pair verification metrics, LFW protocol: cosine similarity, k-fold threshold, ROC AUC, TAR@FAR.

A pair is predicted "same" when its similarity is above the threshold. For each of the
`folds` contiguous folds (file order), the threshold that maximises accuracy on the other
folds is chosen among the midpoints between their consecutive distinct similarities (the lowest
one on a tie; the lower similarity where the midpoint of two adjacent floats rounds up to the
upper) and scored on the held-out fold. AUC and TAR@FAR are computed over all pairs.
"""

from __future__ import annotations

import math

import numpy as np

from dml.metrics.inputs import as_embeddings, as_labels, unit_rows


def best_threshold(sims: np.ndarray, same: np.ndarray) -> float:
    """The accuracy-maximising threshold ("same" iff sim > threshold) for these pairs."""
    values = np.unique(sims)
    mids = (values[:-1] + values[1:]) / 2
    # two values one float apart: the midpoint may round up to the upper one, which then no
    # longer separates them ("same" iff sim > threshold); the lower value does
    mids = np.where(mids < values[1:], mids, values[:-1])
    candidates = np.concatenate([[values[0] - 1.0], mids, [values[-1] + 1.0]])
    order = np.argsort(sims, kind="stable")
    s, y = sims[order], same[order]
    # items at or below each candidate are predicted "different"
    below = np.searchsorted(s, candidates, side="right")
    neg_below = np.concatenate([[0], np.cumsum(~y)])[below]
    pos_above = int(y.sum()) - np.concatenate([[0], np.cumsum(y)])[below]
    return float(candidates[int(np.argmax(neg_below + pos_above))])


def roc_auc(sims: np.ndarray, same: np.ndarray) -> float:
    """Area under the ROC curve: P(sim of a same pair > sim of a different pair), ties count 1/2."""
    from scipy.stats import rankdata  # imported here: scipy.stats is slow to import

    ranks = rankdata(sims)  # average ranks on ties
    n_pos = int(same.sum())
    n_neg = len(same) - n_pos
    return float((ranks[same].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def tar_at_far(sims: np.ndarray, same: np.ndarray, far: float) -> float:
    """Share of same pairs above the lowest threshold whose share of different pairs above it is <= far."""
    neg = np.sort(sims[~same])[::-1]
    allowed = math.floor(far * len(neg) + 1e-9)  # false accepts allowed
    threshold = neg[allowed] if allowed < len(neg) else -np.inf
    return float((sims[same] > threshold).mean())


def far_name(far: float) -> str:
    """FAR in short scientific notation for metric names: 1e-3, 2.5e-4."""
    mantissa, exponent = f"{far:e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def verification_metrics(
    emb_a, emb_b, same, folds: int = 10, far: float = 1e-3
) -> dict[str, float]:
    """Accuracy (mean and std over folds), mean threshold, ROC AUC and TAR@FAR of pairs (a_i, b_i).

    emb_a, emb_b: [P, D] embeddings of the two sides of each pair, in file order; same: [P] bools.
    """
    a = as_embeddings(emb_a, "emb_a")
    b = as_embeddings(emb_b, "emb_b", dim=a.shape[1])
    if len(a) != len(b):
        raise ValueError(
            f"emb_a has {len(a)} rows but emb_b has {len(b)}: pass one row per pair on each side"
        )
    raw = as_labels(same, "same", len(a))
    if not np.isin(raw, [0, 1]).all():
        raise ValueError(
            "same must hold booleans (or 0/1): True where the two images show the same identity"
        )
    same = raw.astype(bool)
    if same.all() or not same.any():
        raise ValueError("verification needs both same and different pairs; got only one kind")
    if not 2 <= int(folds) <= len(a):
        raise ValueError(f"folds={folds} must be between 2 and the number of pairs ({len(a)})")
    if not 0.0 < far < 1.0:
        raise ValueError(f"far={far} must be in (0, 1)")
    sims = np.einsum("ij,ij->i", unit_rows(a, "emb_a"), unit_rows(b, "emb_b"), dtype=np.float64)

    accuracies, thresholds = [], []
    for test in np.array_split(np.arange(len(sims)), int(folds)):
        train = np.ones(len(sims), dtype=bool)
        train[test] = False
        t = best_threshold(sims[train], same[train])
        thresholds.append(t)
        accuracies.append(float(((sims[test] > t) == same[test]).mean()))
    return {
        "accuracy": float(np.mean(accuracies)),
        "accuracy_std": float(np.std(accuracies)),
        "threshold": float(np.mean(thresholds)),
        "auc": roc_auc(sims, same),
        f"tar@far={far_name(far)}": tar_at_far(sims, same, far),
    }
