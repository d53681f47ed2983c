"""ImageNetDataModule on a tiny ImageFolder tree of real JPEGs written here with PIL."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lightning_grda.data.imagenet import IMAGENET_MEAN, IMAGENET_STD, ImageNetDataModule

CLASSES = ["n01440764", "n01443537"]
# class colours, far apart so JPEG noise cannot confuse them
COLOURS = {"n01440764": (200, 30, 30), "n01443537": (30, 30, 200)}


def make_tree(root: Path, size: tuple[int, int] = (48, 40)) -> None:
    for split, per_class in (("train", 4), ("val", 3)):
        for name in CLASSES:
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(per_class):
                pixels = np.full((size[1], size[0], 3), COLOURS[name], dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{name}_{i}.JPEG", quality=95)


@pytest.fixture
def tree(tmp_path) -> Path:
    make_tree(tmp_path)
    return tmp_path


def _mean_colour(x: torch.Tensor) -> torch.Tensor:
    """Undo the normalisation and average each image over its pixels: (B, 3) in 0..255."""
    raw = x * torch.tensor(IMAGENET_STD)[:, None, None] + torch.tensor(IMAGENET_MEAN)[:, None, None]
    return raw.mean(dim=(2, 3)) * 255


def test_loaders_shapes_classes_and_normalisation(tree):
    dm = ImageNetDataModule(root=tree, batch_size=4, num_workers=0, num_classes=2, image_size=16, resize=20)
    dm.prepare_data()
    dm.setup("fit")
    dm.setup("test")
    assert dm.classes == CLASSES
    assert dm.input_shape == (3, 16, 16)
    assert (len(dm.train_set), len(dm.val_set)) == (8, 6)
    assert dm.test_set is dm.val_set  # the official val folder is the test split

    for loader in (dm.train_dataloader(), dm.val_dataloader(), dm.test_dataloader()):
        x, y = next(iter(loader))
        assert x.shape == (4, 3, 16, 16)
        assert x.dtype == torch.float32
        assert y.dtype == torch.int64
        expected = torch.tensor([COLOURS[CLASSES[label]] for label in y.tolist()], dtype=torch.float32)
        torch.testing.assert_close(_mean_colour(x), expected, atol=6.0, rtol=0)

    _, y = next(iter(dm.test_dataloader()))
    assert y.tolist() == [0, 0, 0, 1]  # in order: the first class folder's 3 images come first


def test_class_folders_must_match_between_train_and_val(tree):
    shutil.rmtree(tree / "train" / CLASSES[0])  # checked for every stage, validate included
    dm = ImageNetDataModule(root=tree, num_classes=2, image_size=16, resize=20)
    with pytest.raises(ValueError, match=r"only in train: \[\], only in val: \['n01440764'\]"):
        dm.setup("validate")


def test_missing_tree_names_the_path_and_layout(tmp_path):
    (tmp_path / "train" / "a").mkdir(parents=True)
    dm = ImageNetDataModule(root=tmp_path, num_classes=1)
    expected = re.escape(f"{tmp_path / 'val'} is not a directory; expected an ImageFolder tree {tmp_path}/train/")
    with pytest.raises(FileNotFoundError, match=expected):
        dm.prepare_data()
    with pytest.raises(FileNotFoundError, match=expected):
        dm.setup("fit")


def test_num_classes_is_checked_against_the_tree(tree):
    dm = ImageNetDataModule(root=tree)  # default 1000
    assert dm.num_classes == 1000
    with pytest.raises(ValueError, match=r"Invalid num_classes: 1000; .*train has 2 class folders"):
        dm.setup("fit")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"batch_size": -1}, r"Invalid batch_size: -1; expected an int >= 1$"),
        ({"num_workers": -2}, r"Invalid num_workers: -2; expected an int >= 0"),
        ({"num_classes": 0}, r"Invalid num_classes: 0; expected an int >= 1$"),
        ({"image_size": 0}, r"Invalid image_size: 0; expected an int >= 1$"),
        ({"image_size": 32, "resize": 16}, r"Invalid resize: 16; expected an int >= 32$"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        ImageNetDataModule(root=tmp_path, **kwargs)


def test_train_is_a_random_crop_and_flip_and_eval_the_centre_crop(tmp_path):
    """On a left-to-right ramp: eval is Resize(20) + CenterCrop(16), every time; train varies and sometimes flips."""
    from torchvision.transforms.v2 import functional as F

    ramp = np.tile(np.linspace(0, 255, 48).astype(np.uint8), (40, 1))
    image = Image.fromarray(np.stack([ramp] * 3, axis=-1))
    for split in ("train", "val"):
        for name in CLASSES:
            (tmp_path / split / name).mkdir(parents=True)
            image.save(tmp_path / split / name / "ramp.png")  # lossless, so the expected values are exact
    dm = ImageNetDataModule(root=tmp_path, batch_size=1, num_workers=0, num_classes=2, image_size=16, resize=20)
    dm.setup("fit")

    expected = F.center_crop(F.resize(F.to_image(image), [20]), [16])
    expected = F.normalize(F.to_dtype(expected, torch.float32, scale=True), IMAGENET_MEAN, IMAGENET_STD)
    for seed in range(3):
        torch.manual_seed(seed)
        torch.testing.assert_close(dm.val_set[0][0], expected, rtol=0, atol=1e-6)

    crops = []
    for seed in range(12):
        torch.manual_seed(seed)
        crops.append(dm.train_set[0][0])
    assert any(not torch.equal(crops[0], c) for c in crops[1:])  # a random crop
    slopes = [float(c[0, :, -1].mean() - c[0, :, 0].mean()) for c in crops]
    assert min(slopes) < 0 < max(slopes)  # some are flipped: the ramp then falls from left to right
