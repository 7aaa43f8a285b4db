"""Backbones and the embedding head."""

from dml.models.bninception import BNInception
from dml.models.efficientnet_lite import EfficientNetLite0
from dml.models.embedding import EmbeddingModel
from dml.models.freeze import freeze_batchnorm
from dml.models.frozen import FrozenTrunkEmbedding
from dml.models.resnet import TorchvisionResNet
from dml.models.small_cnn import SmallCNN
from dml.models.timm_backbone import TimmBackbone

__all__ = [
    "BNInception",
    "EfficientNetLite0",
    "EmbeddingModel",
    "FrozenTrunkEmbedding",
    "SmallCNN",
    "TimmBackbone",
    "TorchvisionResNet",
    "freeze_batchnorm",
]
