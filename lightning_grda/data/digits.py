"""scikit-learn's handwritten digits as a LightningDataModule: the pack's embedded default, no download.

:func:`sklearn.datasets.load_digits` ships 1,797 real 8x8 grey-level images of the digits 0-9 (pixel values
0..16) inside scikit-learn, so a job on this datamodule runs on a fresh machine without network or files.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch.utils.data import TensorDataset
from typing_extensions import override

from lightning_grda.checks import check_int, check_real
from lightning_grda.data._common import ClassificationDataModule

__all__ = ["DIGITS_MEAN", "DIGITS_STD", "N_DIGITS", "DigitsDataModule"]

#: Number of images in ``sklearn.datasets.load_digits``.
N_DIGITS = 1797
#: Mean and standard deviation of all pixels (after scaling 0..16 to [0, 1]) of the default training split
#: (``test_fraction=0.2``, ``val_fraction=0.1``, ``seed=0``), rounded to 4 digits. Fixed constants, so the
#: normalisation does not move with ``seed`` or the fractions; over all 1,797 images they are 0.3053 / 0.3760.
DIGITS_MEAN = 0.3051
DIGITS_STD = 0.3759


class DigitsDataModule(ClassificationDataModule):
    """The 1,797 handwritten digits of scikit-learn, split deterministically into train / val / test.

    Splits (stratified by class, seeded by ``seed`` through :func:`sklearn.model_selection.train_test_split`):

    * test: ``ceil(test_fraction * 1797)`` images, held out first (360 by default);
    * val: ``ceil(val_fraction * rest)`` images carved out of the remaining pool (144 by default);
    * train: everything else (1,293 by default).

    With ``val_fraction=0`` there is no carve-out and validation runs on the test split. ``trainer.test`` always
    uses the test split.

    Each image is a ``float32`` tensor of shape ``(1, 8, 8)``: pixels scaled from 0..16 to [0, 1], then
    normalised with the fixed constants :data:`DIGITS_MEAN` and :data:`DIGITS_STD`. Labels are ``int64`` in 0..9.
    All tensors live in memory (``TensorDataset``); there is no augmentation.

    Args:
        batch_size: Samples per batch on EACH device; under DDP on ``N`` devices the effective batch is
            ``N * batch_size``.
        num_workers: Loader worker processes per device (``0``, the default, is fastest for in-memory tensors).
        pin_memory: Pin host memory of batches.
        test_fraction: Fraction of all images held out for testing, in ``(0, 1)``.
        val_fraction: Fraction of the non-test images carved out for validation, in ``[0, 1)``.
        seed: Seed of the split (not of the training shuffle, which ``seed_everything`` controls).

    Attributes:
        num_classes: 10.
        input_shape: ``(1, 8, 8)``.

    Example:
        >>> dm = DigitsDataModule(batch_size=32)
        >>> dm.setup("fit")
        >>> len(dm.train_set), len(dm.val_set), len(dm.test_set)
        (1293, 144, 360)
        >>> x, y = next(iter(dm.train_dataloader()))
        >>> tuple(x.shape), x.dtype, y.dtype
        ((32, 1, 8, 8), torch.float32, torch.int64)
    """

    num_classes = 10
    input_shape = (1, 8, 8)

    def __init__(
        self,
        batch_size: int = 64,
        num_workers: int = 0,
        pin_memory: bool = False,
        test_fraction: float = 0.2,
        val_fraction: float = 0.1,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size, num_workers, pin_memory)
        check_real("test_fraction", test_fraction, low=0.0, high=1.0, low_open=True, high_open=True)
        check_real("val_fraction", val_fraction, low=0.0, high=1.0, high_open=True)
        check_int("seed", seed)
        n_test = math.ceil(test_fraction * N_DIGITS)
        n_val = math.ceil(val_fraction * (N_DIGITS - n_test))
        n_train = N_DIGITS - n_test - n_val
        # a stratified split needs at least one image of each class on both sides
        if n_test < self.num_classes or N_DIGITS - n_test < 2 * self.num_classes:
            raise ValueError(
                f"Invalid test_fraction: {test_fraction!r}; it leaves {n_test} test images of {N_DIGITS}, "
                f"expected at least {self.num_classes} test and {2 * self.num_classes} others"
            )
        if 0 < n_val < self.num_classes or n_train < self.num_classes:
            raise ValueError(
                f"Invalid val_fraction: {val_fraction!r}; it leaves {n_val} val and {n_train} train images, "
                f"expected 0 or at least {self.num_classes} val, and at least {self.num_classes} train"
            )
        self.test_fraction = test_fraction
        self.val_fraction = val_fraction
        self.seed = seed
        self._sizes = (n_train, n_val, n_test)
        self.train_indices: np.ndarray | None = None
        self.val_indices: np.ndarray | None = None
        self.test_indices: np.ndarray | None = None
        self.save_hyperparameters()

    @override
    def setup(self, stage: str) -> None:
        """Load the images (in memory, once) and split them; every stage gets all three splits."""
        if self.train_set is not None:
            return
        images, labels = load_digits(return_X_y=True)
        indices = np.arange(len(labels))
        _, n_val, n_test = self._sizes
        pool, test = train_test_split(indices, test_size=n_test, stratify=labels, random_state=self.seed)
        if n_val > 0:
            train, val = train_test_split(pool, test_size=n_val, stratify=labels[pool], random_state=self.seed)
        else:
            train, val = pool, test
        # indices into load_digits(), sorted; val_indices is test_indices when there is no carve-out
        self.train_indices, self.val_indices, self.test_indices = (np.sort(i) for i in (train, val, test))
        x = torch.from_numpy(images).to(torch.float32).div_(16.0).sub_(DIGITS_MEAN).div_(DIGITS_STD)
        x = x.reshape(-1, *self.input_shape)
        y = torch.from_numpy(labels).to(torch.int64)
        self.train_set, self.val_set, self.test_set = (
            TensorDataset(x[torch.from_numpy(i)], y[torch.from_numpy(i)])
            for i in (self.train_indices, self.val_indices, self.test_indices)
        )
