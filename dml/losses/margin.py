"""Wu et al. 2017's margin loss with a learnable boundary beta (global, optionally + per class)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from dml.losses.base import TupleLoss, active_fraction, pair_distances
from dml.samplers.tuples import Tuples, all_pairs, to_pairs


class MarginLoss(TupleLoss):
    """Positive term (alpha + d_ap - beta)_+, negative term (alpha + beta - d_an)_+.

    loss = (sum of terms + nu * sum of betas used) / number of non-zero terms, 0 when none is
    non-zero. beta = beta_0 (+ beta_class[label of anchor] when num_classes is given), trained
    with its own learning rate when learn_beta (Wu et al.: SGD, lr 0.1). Each pair term carries
    half its anchor's beta in the nu sum, so a triplet's two terms count beta once, as in the
    authors' code.
    """

    def __init__(
        self,
        margin: float = 0.2,
        beta: float = 1.2,
        learn_beta: bool = True,
        num_classes: int | None = None,
        nu: float = 0.0,
    ) -> None:
        super().__init__()
        if margin < 0:
            raise ValueError(f"loss.margin={margin} is not valid: expected a non-negative number")
        if beta <= 0:
            raise ValueError(f"loss.beta={beta} is not valid: expected a positive number")
        if nu < 0:
            raise ValueError(f"loss.nu={nu} is not valid: expected a non-negative number")
        if num_classes is not None and num_classes < 1:
            raise ValueError(f"loss.num_classes={num_classes} must be a positive int or null")
        self.margin = float(margin)
        self.nu = float(nu)
        self.learn_beta = learn_beta
        self.num_classes = num_classes
        beta0 = torch.tensor(float(beta))
        beta_class = torch.zeros(num_classes) if num_classes is not None else None
        if learn_beta:
            self.beta = nn.Parameter(beta0)
            self.beta_class = nn.Parameter(beta_class) if beta_class is not None else None
        else:
            self.register_buffer("beta", beta0)
            self.register_buffer("beta_class", beta_class)

    def log_histograms(self) -> dict[str, Tensor]:
        """The per-class beta offsets (detached) when the loss has them."""
        return {} if self.beta_class is None else {"beta_class": self.beta_class.detach()}

    def anchor_beta(self, labels: Tensor, anchors: Tensor | slice) -> Tensor:
        """beta of each anchor: beta_0 (+ beta_class[label]); a 0-d tensor for a global beta."""
        if self.beta_class is None:
            return self.beta
        return self.beta + self.beta_class[labels[anchors]]

    def compute(
        self, distances: Tensor, labels: Tensor, tuples: Tuples | None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        if self.beta_class is not None and labels.numel():
            low, high = int(labels.min()), int(labels.max())
            if low < 0 or high >= self.num_classes:
                raise ValueError(
                    f"MarginLoss(num_classes={self.num_classes}) got labels in [{low}, {high}]; "
                    "per-class beta needs labels 0..num_classes-1 (set loss.num_classes to the "
                    "number of training classes)"
                )
        pairs = all_pairs(labels) if tuples is None else to_pairs(tuples)
        pa, _, na, _ = pairs
        beta_p = self.anchor_beta(labels, pa)
        beta_n = beta_p if na is pa else self.anchor_beta(labels, na)
        d_ap, d_an = pair_distances(distances, pairs)
        pos = torch.relu(d_ap - (beta_p - self.margin))
        neg = torch.relu((beta_n + self.margin) - d_an)
        count = (pos > 0).sum() + (neg > 0).sum()
        total = pos.sum() + neg.sum()
        if self.nu > 0:
            beta_sum = beta_p.expand(pa.shape).sum() + beta_n.expand(na.shape).sum()
            total = total + self.nu * 0.5 * beta_sum
            # no active term: 0, not the beta regulariser over nothing
            total = torch.where(count > 0, total, 0.0)
        # without a regulariser, no active term means every term (and its gradient) is 0
        loss = total / count.clamp_min(1)
        stats = {
            "active_fraction": active_fraction(count, pos.numel() + neg.numel()),
            "beta_mean": self.beta
            if self.beta_class is None
            else self.anchor_beta(labels, slice(None)).mean(),
        }
        return loss, stats
