"""LightningDataModules: scikit-learn's digits (the embedded default), CIFAR-10/100 and ImageNet."""

from lightning_grda.data.cifar import CIFAR10DataModule, CIFAR100DataModule
from lightning_grda.data.digits import DigitsDataModule
from lightning_grda.data.imagenet import ImageNetDataModule

__all__ = ["CIFAR10DataModule", "CIFAR100DataModule", "DigitsDataModule", "ImageNetDataModule"]
