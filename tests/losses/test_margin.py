"""MarginLoss (Wu et al. 2017): hand cases, gradients, learnable beta, and pytorch-metric-learning."""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from pytorch_metric_learning.losses import MarginLoss as PMLMarginLoss

from dml.losses import MarginLoss
from dml.samplers import Pairs, Triplets, TupleSampler


def circle(*degrees):
    a = torch.tensor(degrees, dtype=torch.float64).deg2rad()
    return torch.stack([a.cos(), a.sin()], dim=1)


def chord(deg):
    return 2 * math.sin(math.radians(deg) / 2)  # distance of two unit vectors deg apart


def test_hand_case():
    x = circle(0, 60, 90, 180)  # d(0,1)=1, d(0,2)=sqrt2, d(0,3)=2
    labels = torch.tensor([0, 0, 1, 1])
    t = Triplets(torch.tensor([0, 1]), torch.tensor([1, 0]), torch.tensor([2, 3]))
    loss = MarginLoss(margin=0.2, beta=1.2)
    value = loss(x, labels, t)
    # pos terms (0.2 + 1 - 1.2)_+ = 0 twice; neg terms (0.2 + 1.2 - sqrt2)_+ = 0 and
    # (0.2 + 1.2 - d(1,3)=chord(120)=1.732)_+ = 0 -> nothing active
    assert value.item() == 0.0
    loss = MarginLoss(margin=0.3, beta=1.2)
    pos = 0.3 + 1.0 - 1.2  # 0.1, both positive pairs
    neg = [0.3 + 1.2 - math.sqrt(2), 0.3 + 1.2 - chord(120)]  # 0.0858, <0
    expected = (2 * pos + neg[0]) / 3
    assert loss(x, labels, t).item() == pytest.approx(expected, abs=1e-6)  # beta is float32
    assert loss.log_stats()["active_fraction"].item() == pytest.approx(3 / 4)


def test_nu_regularisation_and_per_class_beta():
    x = circle(0, 60, 90, 180)
    labels = torch.tensor([0, 0, 1, 1])
    t = Triplets(torch.tensor([0, 3]), torch.tensor([1, 2]), torch.tensor([2, 0]))
    loss = MarginLoss(margin=0.3, beta=1.2, num_classes=2, nu=0.1)
    with torch.no_grad():
        loss.beta_class[1] = 0.45  # class 1's beta = 1.65
    # triplet (0,1,2), beta 1.2: pos 0.3+1-1.2=.1, neg 0.3+1.2-sqrt2=.0858
    # triplet (3,2,0), beta 1.65: pos 0.3+sqrt2-1.65=.0642, neg 0.3+1.65-2<0 (inactive)
    terms = 0.1 + (0.3 + 1.2 - math.sqrt(2)) + (0.3 + math.sqrt(2) - 1.65)
    expected = (terms + 0.1 * (1.2 + 1.65)) / 3
    value = loss(x, labels, t)
    assert value.item() == pytest.approx(expected, abs=1e-6)
    value.backward()
    # d/d beta_0 = (-1 [pos 0] + 1 [neg 0] - 1 [pos 3] + nu * 2) / 3
    assert loss.beta.grad.item() == pytest.approx((-1 + 1 - 1 + 0.2) / 3, abs=1e-6)
    assert loss.beta_class.grad.tolist() == pytest.approx([(0 + 0.1) / 3, (-1 + 0.1) / 3], abs=1e-6)
    assert loss.log_stats()["beta_mean"].item() == pytest.approx((1.2 * 2 + 1.65 * 2) / 4)


def test_learn_beta_false_has_no_parameters():
    assert list(MarginLoss(learn_beta=False).parameters()) == []
    assert [p.shape for p in MarginLoss(num_classes=5).parameters()] == [
        torch.Size([]),
        torch.Size([5]),
    ]
    with pytest.raises(ValueError, match="num_classes=3.*labels in \\[0, 5\\]"):
        MarginLoss(num_classes=3)(circle(0, 10, 20), torch.tensor([0, 5, 0]))
    with pytest.raises(ValueError, match="loss.margin"):
        MarginLoss(margin=-0.1)


def test_gradcheck(make_batch):
    x, labels = make_batch(classes=3, per_class=3, dim=4)
    t = TupleSampler("all", "distance_weighted", seed=0)(F.normalize(x, dim=1), labels)
    loss = MarginLoss(margin=0.2, beta=0.9, learn_beta=False)
    assert torch.autograd.gradcheck(lambda e: loss(F.normalize(e, dim=1), labels, t), (x,))
    assert torch.autograd.gradcheck(lambda e: loss(F.normalize(e, dim=1), labels), (x,))


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_matches_pytorch_metric_learning_on_same_triplets(make_batch, seed, dtype):
    x, labels = make_batch(classes=8, per_class=5, dim=16, seed=seed, dtype=dtype)
    triplets = TupleSampler("all", "distance_weighted", seed=seed)(F.normalize(x, dim=1), labels)
    ours = MarginLoss(margin=0.2, beta=1.2, learn_beta=True, nu=0.0)
    theirs = PMLMarginLoss(margin=0.2, beta=1.2, learn_beta=True, nu=0.0)
    v1 = ours(F.normalize(x, dim=1), labels, triplets)
    (g1, gb1) = torch.autograd.grad(v1, (x, ours.beta))
    v2 = theirs(F.normalize(x, dim=1), labels, tuple(triplets))
    (g2, gb2) = torch.autograd.grad(v2, (x, theirs.beta))
    assert v1.item() == pytest.approx(v2.item(), abs=1e-5)
    assert torch.allclose(g1, g2, atol=1e-5, rtol=0)
    assert gb1.item() == pytest.approx(gb2.item(), abs=1e-5)
    assert v1.item() > 0 and g1.abs().max() > 1e-3  # a real, non-trivial case


def test_no_active_term_gives_zero_and_zero_gradient():
    x = circle(0, 1, 179, 180).requires_grad_()  # classes far apart, members close
    labels = torch.tensor([0, 0, 1, 1])
    loss = MarginLoss(margin=0.2, beta=1.2, nu=0.5)
    value = loss(x, labels)
    value.backward()
    assert value.item() == 0.0 and torch.equal(x.grad, torch.zeros_like(x))
    assert loss.beta.grad.item() == 0.0
    assert loss.log_stats()["active_fraction"].item() == 0.0


def _brute_force_margin(x, labels, pos_pairs, neg_pairs, margin, beta0, beta_class, nu):
    """Wu et al.'s loss term by term in Python: (value, active terms, number of terms).

    Each pair's beta is its anchor's (beta_0 + beta_class[label]); the nu regulariser counts half
    an anchor's beta per pair term, and the value is 0 (no regulariser) when no term is active.
    """

    def beta(a):
        return beta0 if beta_class is None else beta0 + beta_class[labels[a]]

    def dist(a, b):
        return torch.linalg.vector_norm(x[a] - x[b])

    terms = [torch.relu(margin + dist(a, p) - beta(a)) for a, p in pos_pairs]
    terms += [torch.relu(margin + beta(a) - dist(a, n)) for a, n in neg_pairs]
    active = sum(int(t.item() > 0) for t in terms)
    if active == 0:
        return x.sum() * 0.0, 0, len(terms)
    regulariser = sum(beta(a) for a, _ in [*pos_pairs, *neg_pairs]) * 0.5 * nu
    return (sum(terms) + regulariser) / active, active, len(terms)


@st.composite
def margin_cases(draw):
    """A batch on the sphere, its tuples (None, Triplets or Pairs with different anchors for the
    positive and the negative pairs), and the loss's settings, per-class beta included."""
    labels = draw(st.lists(st.integers(0, 2), min_size=2, max_size=9))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    x = F.normalize(torch.randn(len(labels), 3, generator=g, dtype=torch.float64), dim=1)
    labels = torch.tensor(labels)
    same = labels[:, None] == labels[None, :]
    pos = [(a, p) for a in range(len(labels)) for p in range(len(labels)) if same[a, p] and a != p]
    neg = [(a, n) for a in range(len(labels)) for n in range(len(labels)) if not same[a, n]]
    kind = draw(st.sampled_from(["all", "triplets", "pairs"]))
    if kind == "all":
        tuples, pos_pairs, neg_pairs = None, pos, neg
    elif kind == "triplets":
        every = [(a, p, n) for a, p in pos for b, n in neg if a == b]
        chosen = draw(st.lists(st.sampled_from(every), max_size=8)) if every else []
        tuples = Triplets(
            *(torch.tensor([t[i] for t in chosen], dtype=torch.long) for i in range(3))
        )
        pos_pairs, neg_pairs = [(a, p) for a, p, _ in chosen], [(a, n) for a, _, n in chosen]
    else:
        pos_pairs = draw(st.lists(st.sampled_from(pos), max_size=6)) if pos else []
        neg_pairs = draw(st.lists(st.sampled_from(neg), max_size=6)) if neg else []
        column = lambda pairs, i: torch.tensor([q[i] for q in pairs], dtype=torch.long)  # noqa: E731
        tuples = Pairs(
            column(pos_pairs, 0), column(pos_pairs, 1), column(neg_pairs, 0), column(neg_pairs, 1)
        )
    settings_ = {
        "margin": draw(st.sampled_from([0.0, 0.2, 0.5])),
        "beta": draw(st.sampled_from([0.8, 1.2, 1.5])),
        "nu": draw(st.sampled_from([0.0, 0.3])),
        "learn_beta": draw(st.booleans()),
        "num_classes": draw(st.sampled_from([None, 3, 5])),
    }
    offsets = draw(st.lists(st.sampled_from([-0.3, 0.0, 0.25]), min_size=5, max_size=5))
    return x, labels, tuples, pos_pairs, neg_pairs, settings_, offsets


@settings(max_examples=40, deadline=None)
@given(case=margin_cases())
def test_value_gradients_and_stats_match_the_formula_term_by_term(case):
    x, labels, tuples, pos_pairs, neg_pairs, kwargs, offsets = case
    loss = MarginLoss(**kwargs)
    if kwargs["num_classes"] is not None:  # a trained per-class beta
        with torch.no_grad():
            loss.beta_class.copy_(torch.tensor(offsets[: kwargs["num_classes"]]))
    ours_x = x.clone().requires_grad_()
    value = loss(ours_x, labels, tuples)

    beta0 = loss.beta.detach().double().requires_grad_()
    beta_class = (
        None if loss.beta_class is None else loss.beta_class.detach().double().requires_grad_()
    )
    ref_x = x.clone().requires_grad_()
    expected, active, total = _brute_force_margin(
        ref_x, labels, pos_pairs, neg_pairs, kwargs["margin"], beta0, beta_class, kwargs["nu"]
    )
    assert value.item() == pytest.approx(expected.item(), abs=1e-6)
    stats = loss.log_stats()
    assert stats["active_fraction"].item() == pytest.approx(active / max(total, 1))
    per_item = beta0 if beta_class is None else (beta0 + beta_class[labels]).mean()
    assert stats["beta_mean"].item() == pytest.approx(per_item.item(), abs=1e-6)

    learned = [loss.beta] + ([loss.beta_class] if loss.beta_class is not None else [])
    ref_learned = [beta0] + ([beta_class] if beta_class is not None else [])
    if not kwargs["learn_beta"]:
        assert list(loss.parameters()) == []
        learned, ref_learned = [], []
    grads = torch.autograd.grad(value, [ours_x, *learned], allow_unused=True)
    ref_grads = torch.autograd.grad(expected, [ref_x, *ref_learned], allow_unused=True)
    for ours, ref in zip(grads, ref_grads, strict=True):
        ours = torch.zeros(()) if ours is None else ours
        ref = torch.zeros(()) if ref is None else ref
        assert torch.allclose(ours.double(), ref.double().expand_as(ours), atol=1e-6, rtol=0)


def test_a_single_active_term_is_its_own_mean_with_the_regulariser():
    """One active term of four: loss = (term + nu * beta of the pairs / 2) / 1."""
    x = circle(0, 60, 90, 180)  # d(0,1)=1, d(0,2)=sqrt2, d(1,3)=chord(120)
    labels = torch.tensor([0, 0, 1, 1])
    t = Triplets(torch.tensor([0, 1]), torch.tensor([1, 0]), torch.tensor([2, 3]))
    # margin 0.2, beta 1.25: pos terms 0.2 + 1 - 1.25 < 0; neg (0.2 + 1.25 - sqrt2) = 0.0358 only
    term = 0.2 + 1.25 - math.sqrt(2)
    for nu in (0.0, 0.1):
        loss = MarginLoss(margin=0.2, beta=1.25, nu=nu)
        value = loss(x, labels, t)
        assert value.item() == pytest.approx(term + nu * 0.5 * 4 * 1.25, abs=1e-6)
        assert loss.log_stats()["active_fraction"].item() == pytest.approx(1 / 4)
    one = MarginLoss(margin=0.2, beta=1.25)
    single = Triplets(torch.tensor([0]), torch.tensor([1]), torch.tensor([2]))
    assert one(x, labels, single).item() == pytest.approx(term, abs=1e-6)
    assert one.log_stats()["active_fraction"].item() == 0.5  # of the triplet's two terms


def test_per_class_beta_refuses_labels_outside_its_classes_and_is_kept_when_fixed():
    x, labels = circle(0, 10, 20, 30), torch.tensor([0, 1, 2, 1])
    with pytest.raises(ValueError, match=r"num_classes=2.*labels in \[0, 2\]"):
        MarginLoss(num_classes=2)(x, labels)  # label 2 has no beta offset
    with pytest.raises(ValueError, match=r"num_classes=3.*labels in \[-1, 1\]"):
        MarginLoss(num_classes=3)(x, labels - 1)
    learned = MarginLoss(num_classes=3)
    with torch.no_grad():
        learned.beta_class.copy_(torch.tensor([0.1, -0.2, 0.3]))
    (histogram,) = learned.log_histograms().values()
    assert torch.equal(histogram, learned.beta_class.detach())
    assert MarginLoss().log_histograms() == {}
    # a fixed (learn_beta=False) per-class beta is state: loaded from a trained loss, it is used
    fixed = MarginLoss(learn_beta=False, num_classes=3)
    fixed.load_state_dict(learned.state_dict())
    assert list(fixed.parameters()) == [] and torch.equal(fixed.beta_class, learned.beta_class)
    assert fixed(x, labels).item() == pytest.approx(learned(x, labels).item(), abs=1e-7)
    assert fixed(x, labels).item() != pytest.approx(MarginLoss(learn_beta=False)(x, labels).item())
