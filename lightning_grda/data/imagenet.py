"""ImageNet (ILSVRC2012) as a LightningDataModule on :class:`torchvision.datasets.ImageFolder` trees.

Nothing is downloaded: the user points ``root`` at a tree ``root/train/<class>/<image>`` and
``root/val/<class>/<image>`` (the 50,000 validation images sorted into the same class folders as train).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torchvision.datasets import ImageFolder
from torchvision.datasets.folder import find_classes
from torchvision.transforms import v2
from typing_extensions import override

from lightning_grda.checks import check_int
from lightning_grda.data._common import ClassificationDataModule

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "ImageNetDataModule"]

# Per-channel (R, G, B) mean and std of the ImageNet train set in [0, 1]: the constants torchvision's pretrained
# models were trained with (torchvision.models weights' transforms use the same values).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ImageNetDataModule(ClassificationDataModule):
    """ImageNet from an ImageFolder tree: train on ``root/train``, validate AND test on ``root/val``.

    The official validation set serves as the test split (the labelled ILSVRC2012 test set was never released, and
    papers, gRDA's included, report accuracy on it), so ``trainer.validate`` and ``trainer.test`` both use
    ``root/val``. Labels are the indices of the sorted class-folder names, which must be the same in ``train/`` and
    ``val/``.

    Transforms: train ``RandomResizedCrop(image_size)`` + ``RandomHorizontalFlip``; val/test ``Resize(resize)``
    (shorter side) + ``CenterCrop(image_size)``; both then scale to [0, 1] and normalise with
    :data:`IMAGENET_MEAN` / :data:`IMAGENET_STD`. Inputs are ``float32`` ``(3, image_size, image_size)``, labels
    ``int64``.

    Args:
        root: Folder holding ``train/`` and ``val/``.
        batch_size: Samples per batch on EACH device; under DDP on ``N`` devices the effective batch is
            ``N * batch_size`` (the paper's batch of 256 on 8 GPUs is ``batch_size=32``).
        num_workers: Loader worker processes per device (JPEG decoding is the bottleneck); kept alive across
            epochs when ``> 0``.
        pin_memory: Pin host memory of batches (useful when training on a GPU).
        num_classes: Number of class folders expected; known before ``setup`` so a model can be configured from
            it, and checked against ``root/train`` in ``prepare_data`` / ``setup``.
        image_size: Side of the square crops fed to the model.
        resize: Shorter side the val/test images are resized to before the centre crop; ``>= image_size``.

    Attributes:
        num_classes: As given (1000 by default).
        input_shape: ``(3, image_size, image_size)``.
        classes: The class-folder names, after ``setup``.
    """

    def __init__(
        self,
        root: str | Path = "data/imagenet",
        batch_size: int = 256,
        num_workers: int = 8,
        pin_memory: bool = False,
        num_classes: int = 1000,
        image_size: int = 224,
        resize: int = 256,
    ) -> None:
        super().__init__(batch_size, num_workers, pin_memory)
        check_int("num_classes", num_classes, low=1)
        check_int("image_size", image_size, low=1)
        check_int("resize", resize, low=image_size)  # resize >= image_size
        self.root = Path(root)
        self.num_classes = num_classes
        self.image_size = image_size
        self.resize = resize
        self.input_shape = (3, image_size, image_size)
        self.classes: list[str] | None = None
        to_normalised_tensor = [
            v2.ToImage(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
        self.train_transform = v2.Compose(
            [v2.RandomResizedCrop(image_size), v2.RandomHorizontalFlip(), *to_normalised_tensor]
        )
        self.eval_transform = v2.Compose([v2.Resize(resize), v2.CenterCrop(image_size), *to_normalised_tensor])
        self.save_hyperparameters()

    def _check_tree(self) -> list[str]:
        """Check both folders exist and hold the same ``num_classes`` class folders; return the class names."""
        layout = f"expected an ImageFolder tree {self.root}/train/<class>/<image> and {self.root}/val/<class>/<image>"
        found = {}
        for split in ("train", "val"):
            folder = self.root / split
            if not folder.is_dir():
                raise FileNotFoundError(f"ImageNet not found: {os.path.abspath(folder)} is not a directory; {layout}")
            found[split] = find_classes(folder)[0]  # sorted class-folder names; raises if there are none
        if found["train"] != found["val"]:
            only_train = sorted(set(found["train"]) - set(found["val"]))[:5]
            only_val = sorted(set(found["val"]) - set(found["train"]))[:5]
            raise ValueError(
                f"ImageNet class folders differ between {self.root}/train and {self.root}/val (only in train: "
                f"{only_train}, only in val: {only_val}, at most 5 shown); labels would not match"
            )
        if len(found["train"]) != self.num_classes:
            raise ValueError(
                f"Invalid num_classes: {self.num_classes!r}; {self.root}/train has {len(found['train'])} class folders"
            )
        return found["train"]

    @override
    def prepare_data(self) -> None:
        """Check the tree (nothing to download): both folders exist with the same ``num_classes`` classes."""
        self._check_tree()

    @override
    def setup(self, stage: str) -> None:
        """Scan the folders a stage needs (once): ``fit`` train and val, ``validate`` / ``test`` val."""
        self.classes = self._check_tree()
        if stage == "fit" and self.train_set is None:
            self.train_set = ImageFolder(self.root / "train", transform=self.train_transform)
        if stage in ("fit", "validate", "test") and self.val_set is None:
            self.val_set = self.test_set = ImageFolder(self.root / "val", transform=self.eval_transform)
