"""A frozen trunk under a trainable head: the model side of `backbone.frozen=true`.

The backbone never trains: its parameters get no gradient, it stays in eval mode (BatchNorm uses
its stored statistics, dropout is off) whatever `.train()` sets, and it runs without autograd.
Inputs are either images [N, C, H, W], which go through the trunk, or the trunk's pooled
features [N, out_features] (2-D), cached once by dml.data.features, which go to the head only.
The state dict keys are those of EmbeddingModel, so a checkpoint loads into either class.
"""

from __future__ import annotations

import torch
from torch import nn

from dml.models.embedding import EmbeddingModel


class FrozenTrunkEmbedding(EmbeddingModel):
    """EmbeddingModel with a frozen backbone that also accepts cached pooled features."""

    def __init__(self, backbone: nn.Module, embedding_dim: int, normalize: bool = True) -> None:
        super().__init__(backbone, embedding_dim, normalize=normalize)
        for param in self.backbone.parameters():
            param.requires_grad_(False)
        self.backbone.eval()

    def train(self, mode: bool = True) -> FrozenTrunkEmbedding:
        super().train(mode)
        self.backbone.eval()  # the cached features were computed in eval mode: stay there
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:  # cached pooled features
            width = self.backbone.out_features
            if x.shape[1] != width:
                raise ValueError(
                    f"features of width {x.shape[1]} given to a frozen trunk whose pooled width is {width}"
                )
            return self.project(x)
        with torch.no_grad():
            features = self.backbone(x)
        return self.project(features)
