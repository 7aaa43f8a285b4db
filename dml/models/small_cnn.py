"""A small convolutional backbone that trains in minutes on two CPU cores (the default run)."""

from __future__ import annotations

import torch
from torch import nn


class SmallCNN(nn.Module):
    """Three conv-BN-ReLU stages with pooling, then average pooling to a `grid` x `grid` map, flattened.

    grid=1 is global average pooling (`4 * width` features); grid=2 keeps a coarse layout
    (`16 * width` features), which matters for centred images such as digits.
    """

    def __init__(self, width: int = 32, in_channels: int = 3, grid: int = 1) -> None:
        super().__init__()
        if width < 1:
            raise ValueError(f"backbone.net.width must be >= 1, got {width}")
        if grid < 1:
            raise ValueError(f"backbone.net.grid must be >= 1, got {grid}")

        def stage(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(cin, cout, 3, padding=1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
                nn.Conv2d(cout, cout, 3, padding=1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
            )

        self.features = nn.Sequential(
            stage(in_channels, width),
            nn.MaxPool2d(2),
            stage(width, 2 * width),
            nn.MaxPool2d(2),
            stage(2 * width, 4 * width),
            nn.AdaptiveAvgPool2d(grid),
            nn.Flatten(),
        )
        self.out_features = 4 * width * grid * grid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)
