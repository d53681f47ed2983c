"""LightningDataModules: scikit-learn's digits (the embedded default), CIFAR-10/100 and ImageNet."""

from lightning_grda.data.cifar import CIFAR10DataModule, CIFAR100DataModule
from lightning_grda.data.digits import DigitsDataModule
from lightning_grda.data.imagenet import ImageNetDataModule
from lightning_grda.data.resumable import EpochShuffleSampler, ResumableLoader

__all__ = [
    "CIFAR10DataModule",
    "CIFAR100DataModule",
    "DigitsDataModule",
    "EpochShuffleSampler",
    "ImageNetDataModule",
    "ResumableLoader",
]
