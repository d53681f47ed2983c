"""CIFAR datamodules on files written here in torchvision's on-disk format (pickled batches), no network.

The real CIFAR files are Python 2 pickles; torchvision reads them with ``encoding="latin1"``, which turns their
byte-string keys into ``str`` keys (``"data"``, ``"labels"``). Files pickled here with ``str`` keys therefore load
exactly like the real ones through torchvision's own code. Their md5s differ from the official ones, so the
datamodules run with ``check_integrity=False`` (only the md5 comparison is skipped) except in the test that checks
the md5 comparison is on by default.
"""

from __future__ import annotations

import pickle
import re
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.datasets.cifar

from lightning_grda.data.cifar import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    CIFAR100_MEAN,
    CIFAR100_STD,
    CIFAR10DataModule,
    CIFAR100DataModule,
)


def _pixel(label, channel):
    return (2 * label + 50 * channel + 11) % 256  # odd, so never 0, the value of the crop's zero padding


def _images(labels: list[int]) -> np.ndarray:
    """Uniform images whose channel ``c`` has the pixel value ``_pixel(label, c)``: label and channel readable."""
    values = np.array([[_pixel(y, c) for c in range(3)] for y in labels], dtype=np.uint8)  # (N, 3)
    return np.repeat(values[:, :, None], 32 * 32, axis=2).reshape(len(labels), 3072)


def _dump(path: Path, obj: dict) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def _batch(labels: list[int], key: str, name: str) -> dict:
    return {
        "batch_label": name,
        "data": _images(labels),
        key: labels,
        "filenames": [f"img_{i}.png" for i in range(len(labels))],
    }


def make_cifar10(root: Path, per_batch: int = 4, n_test: int = 6) -> None:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for b in range(1, 6):
        labels = [(b * per_batch + i) % 10 for i in range(per_batch)]
        _dump(folder / f"data_batch_{b}", _batch(labels, "labels", f"training batch {b} of 5"))
    _dump(folder / "test_batch", _batch([i % 10 for i in range(n_test)], "labels", "testing batch 1 of 1"))
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    _dump(folder / "batches.meta", {"label_names": names, "num_cases_per_batch": per_batch, "num_vis": 3072})


def make_cifar100(root: Path, n_train: int = 20, n_test: int = 6) -> None:
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    for name, n in (("train", n_train), ("test", n_test)):
        fine = [(5 * i) % 100 for i in range(n)]
        batch = _batch(fine, "fine_labels", name)
        batch["coarse_labels"] = [y // 5 for y in fine]
        _dump(folder / name, batch)
    meta = {"fine_label_names": [f"class_{i}" for i in range(100)], "coarse_label_names": [f"s{i}" for i in range(20)]}
    _dump(folder / "meta", meta)


def _expected_center(y: torch.Tensor, mean: tuple, std: tuple) -> torch.Tensor:
    """The normalised value of every pixel (so of the centre one) of the images made by ``_images``."""
    raw = torch.stack([_pixel(y, c) for c in range(3)], dim=1).float() / 255  # (B, 3)
    return (raw - torch.tensor(mean)) / torch.tensor(std)


@pytest.mark.parametrize(
    ("dm_cls", "make", "mean", "std", "n_train", "n_test"),
    [
        (CIFAR10DataModule, make_cifar10, CIFAR10_MEAN, CIFAR10_STD, 20, 6),
        (CIFAR100DataModule, make_cifar100, CIFAR100_MEAN, CIFAR100_STD, 20, 6),
    ],
)
def test_loaders_normalise_and_keep_labels(tmp_path, dm_cls, make, mean, std, n_train, n_test):
    make(tmp_path)
    dm = dm_cls(root=tmp_path, batch_size=5, num_workers=0, check_integrity=False)
    dm.prepare_data()
    dm.setup("fit")
    dm.setup("test")
    assert len(dm.train_set) == n_train
    assert len(dm.test_set) == n_test
    assert dm.val_set is dm.test_set  # val_size=0: validation runs on the official test split
    assert dm.input_shape == (3, 32, 32)

    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (5, 3, 32, 32)
    assert x.dtype == torch.float32
    assert y.dtype == torch.int64
    # a crop with padding 4 moves the image by at most 4 pixels, so the centre pixel is always an image pixel
    torch.testing.assert_close(x[:, :, 16, 16], _expected_center(y, mean, std), atol=1e-5, rtol=0)

    x, y = next(iter(dm.test_dataloader()))
    assert x.shape == (5, 3, 32, 32)
    # eval transform: no crop, so every pixel is the normalised value
    torch.testing.assert_close(x, _expected_center(y, mean, std)[:, :, None, None].expand_as(x), atol=1e-5, rtol=0)
    assert y.tolist() == [i % 10 if dm.num_classes == 10 else (5 * i) % 100 for i in range(5)]


def test_num_classes():
    assert CIFAR10DataModule.num_classes == 10
    assert CIFAR100DataModule.num_classes == 100


def test_train_augmentation_pads(tmp_path):
    make_cifar10(tmp_path)
    dm = CIFAR10DataModule(root=tmp_path, batch_size=20, num_workers=0, check_integrity=False)
    dm.prepare_data()
    dm.setup("fit")
    torch.manual_seed(0)
    x, _ = next(iter(dm.train_dataloader()))
    # zero padding appears, after normalisation, as -mean/std on the borders of some crops
    pad = (-torch.tensor(CIFAR10_MEAN) / torch.tensor(CIFAR10_STD))[:, None]
    border = x[:, :, 0, :].transpose(0, 1).reshape(3, -1)  # top rows of all images, per channel
    assert torch.isclose(border, pad, atol=1e-5).any()


def test_val_carve_out_is_seeded_and_disjoint(tmp_path):
    make_cifar10(tmp_path)

    def split(seed: int) -> tuple[list[int], list[int]]:
        dm = CIFAR10DataModule(root=tmp_path, val_size=6, seed=seed, num_workers=0, check_integrity=False)
        dm.setup("fit")
        assert len(dm.train_set) == 14
        assert len(dm.val_set) == 6
        # The eval transform applies to the carve-out: every pixel of these flat images keeps its colour, where the
        # train transform's padded random crop would put padding on the borders of nearly every image.
        torch.manual_seed(0)
        for i in range(len(dm.val_set)):
            x, y = dm.val_set[i]
            colour = _expected_center(torch.tensor([y]), CIFAR10_MEAN, CIFAR10_STD)[0]
            torch.testing.assert_close(x, colour[:, None, None].expand(3, 32, 32), rtol=0, atol=1e-5)
        return dm.train_set.dataset.indices, dm.val_set.dataset.indices

    train, val = split(seed=0)
    assert sorted(train + val) == list(range(20))
    assert split(seed=0) == (train, val)
    assert split(seed=1) != (train, val)


def test_val_carve_out_must_leave_training_images(tmp_path):
    make_cifar10(tmp_path)
    dm = CIFAR10DataModule(root=tmp_path, val_size=20, num_workers=0, check_integrity=False)
    with pytest.raises(ValueError, match=r"Invalid val_size: 20; expected < 20"):
        dm.setup("fit")


@pytest.mark.parametrize(
    ("dm_cls", "folder", "files"),
    [
        (CIFAR10DataModule, "cifar-10-batches-py", "data_batch_1, data_batch_2, .*test_batch, batches.meta"),
        (CIFAR100DataModule, "cifar-100-python", "train, test, meta"),
    ],
)
def test_missing_files_error_names_the_folder(tmp_path, dm_cls, folder, files):
    dm = dm_cls(root=tmp_path / "nowhere")
    expected = re.escape(str(tmp_path / "nowhere" / folder))
    with pytest.raises(FileNotFoundError, match=rf"{expected} lacks {files}.*download=True"):
        dm.prepare_data()
    with pytest.raises(FileNotFoundError, match=expected):
        dm.setup("fit")


def test_one_missing_file_is_named(tmp_path):
    make_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    dm = CIFAR10DataModule(root=tmp_path, num_workers=0, check_integrity=False)
    with pytest.raises(FileNotFoundError, match=r"lacks data_batch_3 \(of data_batch_1, .*, batches.meta\)\. Extract"):
        dm.setup("test")


def test_md5_is_checked_by_default(tmp_path):
    make_cifar10(tmp_path)
    dm = CIFAR10DataModule(root=tmp_path, num_workers=0)
    dm.prepare_data()  # the files exist
    with pytest.raises(RuntimeError, match=r"failed torchvision's md5 check.*check_integrity=False"):
        dm.setup("fit")


def test_failed_download_says_where_to_put_the_files(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    # the network call itself is replaced; everything up to it is the real code
    monkeypatch.setattr(torchvision.datasets.cifar, "download_and_extract_archive", offline)
    dm = CIFAR10DataModule(root=tmp_path, download=True)
    with pytest.raises(RuntimeError, match=rf"Could not download CIFAR-10 .* into {re.escape(str(tmp_path))}.*extract"):
        dm.prepare_data()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"batch_size": 0}, r"Invalid batch_size: 0; expected an int >= 1$"),
        ({"num_workers": -1}, r"Invalid num_workers: -1; expected an int >= 0"),
        ({"val_size": -5}, r"Invalid val_size: -5; expected an int >= 0"),
        ({"val_size": 0.5}, r"Invalid val_size: 0.5"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        CIFAR10DataModule(root=tmp_path, **kwargs)
