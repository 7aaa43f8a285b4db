"""Backbone -> pooled features -> linear head -> L2-normalised embedding."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class EmbeddingModel(nn.Module):
    """Wraps a backbone (any module with `out_features`) with a linear head and L2 normalisation."""

    def __init__(self, backbone: nn.Module, embedding_dim: int, normalize: bool = True) -> None:
        super().__init__()
        if not isinstance(embedding_dim, int) or embedding_dim < 1:
            raise ValueError(f"embedding_dim must be a positive integer, got {embedding_dim!r}")
        features = getattr(backbone, "out_features", None)
        if not isinstance(features, int):
            raise TypeError(
                f"{type(backbone).__name__} must expose an integer `out_features` (its pooled width)"
            )
        self.backbone = backbone
        self.head = nn.Linear(features, embedding_dim)
        self.normalize = normalize
        self.embedding_dim = embedding_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(self.backbone(x))

    def project(self, features: torch.Tensor) -> torch.Tensor:
        """The head on pooled backbone features [N, out_features], normalised when `normalize`."""
        z = self.head(features)
        return F.normalize(z.float(), dim=1) if self.normalize else z
