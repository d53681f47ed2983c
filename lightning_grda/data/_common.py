"""Pieces shared by the datamodules: argument checks and the loader factory."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning.pytorch as pl
from torch.utils.data import DataLoader, Dataset
from typing_extensions import override

from lightning_grda.checks import check_int
from lightning_grda.data.resumable import ResumableLoader

__all__ = ["ClassificationDataModule", "TransformedDataset", "check_loader_args"]


def check_loader_args(batch_size: int, num_workers: int) -> None:
    """Raise ``ValueError`` for a non-positive ``batch_size`` or a negative ``num_workers``.

    Args:
        batch_size: Samples per batch on each device.
        num_workers: Loader worker processes.

    Raises:
        ValueError: If either value is out of range or not an ``int``.

    Example:
        >>> check_loader_args(batch_size=0, num_workers=0)
        Traceback (most recent call last):
        ...
        ValueError: Invalid batch_size: 0; expected an int >= 1
    """
    check_int("batch_size", batch_size, low=1)
    check_int("num_workers", num_workers, low=0)


class TransformedDataset(Dataset):
    """Apply ``transform`` to the input of each ``(input, target)`` pair of ``dataset``.

    Hand-written because torch has no such wrapper: it lets the training and validation subsets of one loaded
    dataset (e.g. a ``random_split`` of CIFAR's train batches) use different transforms without loading the
    files twice.

    Args:
        dataset: A map-style dataset of ``(input, target)`` pairs.
        transform: Called on each input.
    """

    def __init__(self, dataset: Dataset, transform: Callable[[Any], Any]) -> None:
        self.dataset = dataset
        self.transform = transform

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        x, y = self.dataset[index]
        return self.transform(x), y

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]


class ClassificationDataModule(pl.LightningDataModule):
    """Base of the image-classification datamodules: stores loader options and builds the loaders.

    Subclasses set ``train_set``, ``val_set`` and ``test_set`` in ``setup``.

    Args:
        batch_size: Samples per batch on EACH device; under DDP on ``N`` devices the effective batch is
            ``N * batch_size``.
        num_workers: Loader worker processes per device (``0`` loads in the main process). Workers are kept
            alive between epochs (``persistent_workers``) when ``num_workers > 0``.
        pin_memory: Pin host memory of batches (speeds up host-to-GPU copies).
    """

    num_classes: int
    input_shape: tuple[int, int, int]

    def __init__(self, batch_size: int, num_workers: int, pin_memory: bool) -> None:
        super().__init__()
        check_loader_args(batch_size, num_workers)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None
        self.test_set: Dataset | None = None

    def _loader(self, dataset: Dataset | None, shuffle: bool) -> DataLoader:
        if dataset is None:
            raise RuntimeError(f"{type(self).__name__}.setup() must run before its dataloaders are requested")
        options = {
            "batch_size": self.batch_size,
            "num_workers": self.num_workers,
            "pin_memory": self.pin_memory,
            "persistent_workers": self.num_workers > 0,
        }
        if shuffle:
            # order = f(seed, epoch), resumable mid-epoch: see lightning_grda/data/resumable.py
            return ResumableLoader(dataset, shuffle=True, **options)
        return DataLoader(dataset, shuffle=False, **options)

    @override
    def train_dataloader(self) -> DataLoader:
        """Loader over the training split, shuffled as a function of (``seed_everything`` seed, epoch).

        A :class:`~lightning_grda.data.resumable.ResumableLoader`: a resume from any checkpoint, end-of-epoch or
        mid-epoch, continues on the batches the uninterrupted run would have seen.
        """
        return self._loader(self.train_set, shuffle=True)

    @override
    def val_dataloader(self) -> DataLoader:
        """Loader over the validation split, in order."""
        return self._loader(self.val_set, shuffle=False)

    @override
    def test_dataloader(self) -> DataLoader:
        """Loader over the test split, in order."""
        return self._loader(self.test_set, shuffle=False)
