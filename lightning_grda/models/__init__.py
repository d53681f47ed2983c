"""Models: the image classifier LightningModule and its backbones."""

from lightning_grda.models.backbones import BACKBONES, build_backbone
from lightning_grda.models.classifier import ImageClassifier

__all__ = ["BACKBONES", "ImageClassifier", "build_backbone"]
