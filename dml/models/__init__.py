"""Backbones and the embedding head."""

from dml.models.embedding import EmbeddingModel
from dml.models.resnet import TorchvisionResNet
from dml.models.small_cnn import SmallCNN

__all__ = ["EmbeddingModel", "SmallCNN", "TorchvisionResNet"]
