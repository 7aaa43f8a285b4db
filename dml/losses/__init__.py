"""Tuple losses: margin, triplet, contrastive, multi-similarity (DESIGN section 4)."""

from dml.losses.base import TupleLoss
from dml.losses.contrastive import ContrastiveLoss
from dml.losses.margin import MarginLoss
from dml.losses.multi_similarity import MultiSimilarityLoss
from dml.losses.triplet import TripletLoss

__all__ = ["ContrastiveLoss", "MarginLoss", "MultiSimilarityLoss", "TripletLoss", "TupleLoss"]
