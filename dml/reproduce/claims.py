"""The seven claims of the seed papers, each as the methods it trains and the comparisons that decide it.

Written before any run (the rules are in dml.reproduce.verdicts, the margins here) and never tuned to
an outcome. Measures (dml.reproduce.measures):

- `map@r`, `fine/map@r`, `coarse/map@r`: MAP@R of the unseen test classes after training (at the
  fine or coarse label level for Levi et al.); MAP@R rather than Recall@1, which saturates on the
  small embedded sets. Margin 0.01 (one point of MAP@R) for "beats" and "at least as well";
  0.02 for "stays comparable".
- `negative_width` (W1): the width of the central 90% (5th to 95th percentile) of the distances of
  the negatives a strategy picks on a trained model's training batches. Margin 0.05 (the distance
  range is [0, 2]).
- `auc_rounds`, `auc_time`, `drawdown` (W3): the mean height of the test MAP@R curve over the
  evaluation rounds and over the training wall time (faster convergence = higher), and the sum of
  the curve's drops between consecutive evaluations (more stable = lower). Margin 0.01.
"""

from __future__ import annotations

from dataclasses import dataclass

from dml.reproduce.verdicts import Comparison

MAP_MARGIN = 0.01
COMPARABLE_MARGIN = 0.02
WIDTH_MARGIN = 0.05
CURVE_MARGIN = 0.01
NEGATIVE_STRATEGIES = ("random", "hard", "semihard", "distance_weighted")
KINDS = ("final", "curves", "negatives")


@dataclass(frozen=True)
class Method:
    """A named point of a claim's grid: the overrides that make its runs."""

    name: str
    overrides: tuple[str, ...]


@dataclass(frozen=True)
class Claim:
    """A claim: its paper, what it says, the methods it trains, the measures shown and the comparisons that decide it.

    kind: `final` (measures from each run's results.json), `curves` (from its MAP@R curve, W3) or
    `negatives` (W1: the first method's trained models, looked at with every negative strategy).
    """

    id: str
    paper: str
    title: str
    statement: str
    methods: tuple[Method, ...]
    measures: tuple[str, ...]
    comparisons: tuple[Comparison, ...]
    kind: str = "final"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"claim {self.id}: kind {self.kind!r} is not one of {KINDS}")


# ---- Wu et al. 2017 ---------------------------------------------------------------------------
_WU_LOSSES = ("contrastive", "triplet", "margin")
_WU_SAMPLERS = {"random": "random", "semihard": "semihard", "dw": "distance_weighted"}


def _wu(loss: str, sampler: str) -> Method:
    return Method(f"{loss}+{sampler}", (f"loss={loss}", f"sampler={_WU_SAMPLERS[sampler]}"))


W1 = Claim(
    id="W1",
    paper="wu2017",
    title="Distance weighted sampling draws negatives over a wide range of distances",
    statement=(
        "Wu et al. 2017 (Fig. 3b): on a trained model's batches, distance weighted sampling picks "
        "negatives over a wide range of distances, while random, hard and semi-hard sampling are "
        "biased to narrow ranges. Tested on the margin + distance weighted models of W2 (final "
        "weights, training batches embedded in training mode as the sampler sees them): every strategy samples from the same batches, and "
        "the width of the central 90% of its negatives' distances is compared."
    ),
    methods=(_wu("margin", "dw"),),
    measures=("negative_width",),
    comparisons=tuple(
        Comparison("better", "distance_weighted", s, "negative_width", WIDTH_MARGIN)
        for s in ("random", "hard", "semihard")
    ),
    kind="negatives",
)

W2 = Claim(
    id="W2",
    paper="wu2017",
    title="Margin loss at least as good as triplet and contrastive; distance weighted sampling helps each loss",
    statement=(
        "Wu et al. 2017 (loss x sampler ablation): with the same sampler the margin loss does at "
        "least as well as the triplet and contrastive losses, and distance weighted sampling "
        "improves each loss over random and semi-hard sampling. Grid: 3 losses x 3 samplers."
    ),
    methods=tuple(_wu(loss, s) for loss in _WU_LOSSES for s in _WU_SAMPLERS),
    measures=("map@r",),
    comparisons=(
        *(
            Comparison("not_worse", f"margin+{s}", f"{other}+{s}", "map@r", MAP_MARGIN)
            for s in _WU_SAMPLERS
            for other in ("triplet", "contrastive")
        ),
        *(
            Comparison("better", f"{loss}+dw", f"{loss}+{s}", "map@r", MAP_MARGIN)
            for loss in _WU_LOSSES
            for s in ("random", "semihard")
        ),
    ),
)

W3 = Claim(
    id="W3",
    paper="wu2017",
    title="Margin + distance weighted converges faster and more stably",
    statement=(
        "Wu et al. 2017: margin loss + distance weighted sampling converges faster and more stably "
        "than triplet + semi-hard and contrastive + random. Measured on the test MAP@R curve of W2's "
        "runs (the untrained network, then an evaluation after every round): its mean height over "
        "the rounds and over training wall time (faster: higher), and the sum of its drops (more "
        "stable: lower)."
    ),
    methods=(_wu("margin", "dw"), _wu("triplet", "semihard"), _wu("contrastive", "random")),
    measures=("auc_rounds", "auc_time", "drawdown", "map@r"),
    comparisons=tuple(
        Comparison(
            "better",
            "margin+dw",
            other,
            measure,
            CURVE_MARGIN,
            lower_is_better=measure == "drawdown",
        )
        for other in ("triplet+semihard", "contrastive+random")
        for measure in ("auc_rounds", "auc_time", "drawdown")
    ),
    kind="curves",
)

# ---- Levi et al. 2020 -------------------------------------------------------------------------
# the positive strategy alone changes: every method takes the easy_positive sampler's negatives
# (the hardest negative farther than the positive, as in the authors' code)


def _levi(loss: str, positive: str) -> Method:
    overrides = (f"loss={loss}", "sampler=easy_positive")
    if positive != "easy":
        overrides += (f"sampler.positive={positive}",)
    return Method(f"{loss}+{positive}-pos", overrides)


L1 = Claim(
    id="L1",
    paper="levi2020",
    title="Easy positives keep a class's modes apart (class collapse)",
    statement=(
        "Levi et al. 2020: when classes have several modes, all or hard positives collapse each "
        "class while easy positives keep the modes apart. Trained on coarse labels (classes of "
        "several modes), scored on the unseen classes at the fine level (the modes) and the coarse "
        "level from one embedding: easy positives should be better at the fine level and "
        "comparable at the coarse level. Triplet loss, same negatives for every positive strategy."
    ),
    methods=(_levi("triplet", "easy"), _levi("triplet", "all"), _levi("triplet", "hard")),
    measures=("fine/map@r", "coarse/map@r"),
    comparisons=(
        *(
            Comparison("better", "triplet+easy-pos", f"triplet+{p}-pos", "fine/map@r", MAP_MARGIN)
            for p in ("all", "hard")
        ),
        *(
            Comparison(
                "not_worse",
                "triplet+easy-pos",
                f"triplet+{p}-pos",
                "coarse/map@r",
                COMPARABLE_MARGIN,
            )
            for p in ("all", "hard")
        ),
    ),
)

_LEVI_LOSSES = ("triplet", "margin", "multi_similarity")
L2 = Claim(
    id="L2",
    paper="levi2020",
    title="The benefit of easy positives holds across losses",
    statement=(
        "Levi et al. 2020: easy positive sampling improves fine-level retrieval with each loss "
        "(triplet, margin, multi-similarity), against all positives with the same loss and negatives; "
        "trained and scored as in L1."
    ),
    methods=tuple(_levi(loss, p) for loss in _LEVI_LOSSES for p in ("easy", "all")),
    measures=("fine/map@r", "coarse/map@r"),
    comparisons=tuple(
        Comparison("better", f"{loss}+easy-pos", f"{loss}+all-pos", "fine/map@r", MAP_MARGIN)
        for loss in _LEVI_LOSSES
    ),
)

# ---- Wang et al. 2019 -------------------------------------------------------------------------
_MS_BOTH = ("loss=multi_similarity", "sampler=multi_similarity")

M1 = Claim(
    id="M1",
    paper="wang2019",
    title="MS mining and MS weighting together beat each alone",
    statement=(
        "Wang et al. 2019 (ablation): the multi-similarity loss on MS-mined pairs (mining + weighting) "
        "beats the MS loss on all pairs (weighting alone) and a contrastive loss on MS-mined pairs "
        "(mining alone). Embedding size 64."
    ),
    methods=(
        Method("ms-loss+ms-mining", (*_MS_BOTH, "embedding_dim=64")),
        Method("ms-loss+all-pairs", ("loss=multi_similarity", "sampler=all", "embedding_dim=64")),
        Method(
            "contrastive+ms-mining",
            ("loss=contrastive", "sampler=multi_similarity", "embedding_dim=64"),
        ),
    ),
    measures=("map@r",),
    comparisons=tuple(
        Comparison("better", "ms-loss+ms-mining", other, "map@r", MAP_MARGIN)
        for other in ("ms-loss+all-pairs", "contrastive+ms-mining")
    ),
)

M2_DIMS = (64, 128, 256, 512)
M2 = Claim(
    id="M2",
    paper="wang2019",
    title="MS gains grow with the embedding size from 64 to 512",
    statement=(
        "Wang et al. 2019: the MS loss with MS mining does better as the embedding grows from 64 to "
        "512 dimensions. Decided on 512 against 64; 128 and 256 are shown for the trend."
    ),
    methods=tuple(Method(f"ms d={d}", (*_MS_BOTH, f"embedding_dim={d}")) for d in M2_DIMS),
    measures=("map@r",),
    comparisons=(Comparison("better", "ms d=512", "ms d=64", "map@r", MAP_MARGIN),),
)

CLAIMS = (W1, W2, W3, L1, L2, M1, M2)


def claims_of(paper: str) -> tuple[Claim, ...]:
    """The claims of one paper (wu2017 | levi2020 | wang2019), or of every paper for `all`."""
    if paper == "all":
        return CLAIMS
    chosen = tuple(c for c in CLAIMS if c.paper == paper)
    if not chosen:
        papers = sorted({c.paper for c in CLAIMS})
        raise ValueError(f"unknown paper {paper!r}; choose one of {', '.join(papers)} or all")
    return chosen
