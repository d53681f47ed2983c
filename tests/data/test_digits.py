from __future__ import annotations

import lightning as L
import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn

from lightning_grda.data.digits import DIGITS_MEAN, DIGITS_STD, DigitsDataModule
from tests.helpers import quiet_trainer


@pytest.fixture(scope="module")
def dm() -> DigitsDataModule:
    dm = DigitsDataModule(batch_size=32)
    dm.setup("fit")
    return dm


def test_split_sizes_add_up_and_do_not_overlap(dm):
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (1293, 144, 360)
    train, val, test = (set(i.tolist()) for i in (dm.train_indices, dm.val_indices, dm.test_indices))
    assert len(train | val | test) == 1797
    assert not train & val
    assert not train & test
    assert not val & test


def test_splits_are_stratified(dm):
    labels = dm.test_set.tensors[1]
    assert torch.bincount(labels, minlength=10).min() >= 35  # 360 test images, ~36 per class


def test_tensors_are_scaled_normalised_and_labelled(dm):
    x, y = dm.train_set.tensors
    assert x.shape == (1293, *dm.input_shape) == (1293, 1, 8, 8)
    assert x.dtype == torch.float32
    assert y.dtype == torch.int64
    assert dm.num_classes == 10
    images, labels = load_digits(return_X_y=True)
    for row, index in enumerate(dm.train_indices[:5]):
        expected = (torch.from_numpy(images[index]).float().reshape(1, 8, 8) / 16 - DIGITS_MEAN) / DIGITS_STD
        torch.testing.assert_close(x[row], expected)
        assert y[row].item() == labels[index]
    # the constants were computed on this (default) train split
    assert abs(x.mean().item()) < 1e-3
    assert abs(x.std().item() - 1) < 1e-3


def test_a_batch_from_each_loader(dm):
    for loader in (dm.train_dataloader(), dm.val_dataloader(), dm.test_dataloader()):
        x, y = next(iter(loader))
        assert x.shape == (32, 1, 8, 8)
        assert y.shape == (32,)
        assert y.dtype == torch.int64


def test_split_is_deterministic_and_seeded(dm):
    again = DigitsDataModule(seed=0)
    again.setup("test")
    np.testing.assert_array_equal(again.train_indices, dm.train_indices)
    np.testing.assert_array_equal(again.test_indices, dm.test_indices)
    torch.testing.assert_close(again.val_set.tensors[0], dm.val_set.tensors[0])
    other = DigitsDataModule(seed=1)
    other.setup("fit")
    assert not np.array_equal(other.test_indices, dm.test_indices)


def test_no_carve_out_validates_on_test():
    dm = DigitsDataModule(val_fraction=0.0)
    dm.setup("fit")
    assert len(dm.train_set) == 1437
    np.testing.assert_array_equal(dm.val_indices, dm.test_indices)


class _Flat(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self.net(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", nn.functional.cross_entropy(self.net(x), y))

    def test_step(self, batch, batch_idx):
        x, y = batch
        self.log("test_acc", (self.net(x).argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_trainer_fits_and_tests(tmp_path):
    L.seed_everything(0)
    trainer = quiet_trainer(tmp_path, max_epochs=2)
    dm = DigitsDataModule(batch_size=64)
    model = _Flat()
    trainer.fit(model, datamodule=dm)
    (result,) = trainer.test(model, datamodule=dm, verbose=False)
    assert result["test_acc"] > 0.8  # a linear model on the digits reaches ~0.95 in two epochs


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"batch_size": 0}, r"Invalid batch_size: 0; expected an int >= 1$"),
        ({"batch_size": True}, r"Invalid batch_size: True"),
        ({"num_workers": -1}, r"Invalid num_workers: -1; expected an int >= 0"),
        ({"test_fraction": 0.0}, r"Invalid test_fraction: 0.0; expected a finite real number > 0.0 and < 1.0$"),
        ({"test_fraction": 0.001}, r"Invalid test_fraction: 0.001; it leaves 2 test images"),
        ({"val_fraction": 1.0}, r"Invalid val_fraction: 1.0; expected a finite real number >= 0.0 and < 1.0$"),
        ({"val_fraction": 0.001}, r"Invalid val_fraction: 0.001; it leaves 2 val"),
        ({"val_fraction": 0.999}, r"Invalid val_fraction: 0.999; it leaves 1436 val and 1 train"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DigitsDataModule(**kwargs)
