import pytest
import torch

from lightning_grda.models import ImageClassifier
from lightning_grda.optim.grda import GRDA
from tests.helpers import quiet_trainer


class Images(torch.utils.data.Dataset):
    def __init__(self, n=32, classes=10):
        g = torch.Generator().manual_seed(0)
        self.x, self.y = torch.randn(n, 1, 8, 8, generator=g), torch.randint(0, classes, (n,), generator=g)

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


def test_logs_loss_accuracy_and_top5(tmp_path):
    model = ImageClassifier("digits_cnn", num_classes=10, in_channels=1, lr=0.1, c=0.01, mu=0.6)
    loader = torch.utils.data.DataLoader(Images(), batch_size=8)
    trainer = quiet_trainer(tmp_path, limit_val_batches=None, num_sanity_val_steps=None)  # with validation
    trainer.fit(model, loader, loader)
    assert {"train_loss", "train_acc", "val_loss", "val_acc", "val_acc_top5"} <= set(trainer.callback_metrics)
    (results,) = trainer.test(model, loader, verbose=False)
    assert {"test_loss", "test_acc", "test_acc_top5"} <= set(results)
    assert 0 <= results["test_acc"] <= results["test_acc_top5"] <= 1
    assert isinstance(trainer.optimizers[0], GRDA)
    assert trainer.optimizers[0].defaults["c"] == 0.01


def test_no_top5_with_five_classes_or_fewer():
    model = ImageClassifier("digits_cnn", num_classes=3, in_channels=1)
    assert not any("top5" in name for name in model.metrics)


def test_predict_returns_classes():
    model = ImageClassifier("digits_cnn", num_classes=10, in_channels=1)
    x = torch.randn(4, 1, 8, 8)
    assert torch.equal(model.predict_step((x, None), 0), model(x).argmax(1))


def test_exempt_norm_and_bias_makes_a_dense_group():
    model = ImageClassifier("digits_cnn", num_classes=10, in_channels=1, exempt_norm_and_bias=True)
    groups = model.configure_optimizers().param_groups
    assert [g["c"] for g in groups] == [0.005, 0.0]
    assert all(p.dim() <= 1 for p in groups[1]["params"])


def test_unknown_backbone_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"'lenet'.*digits_cnn"):
        ImageClassifier("lenet")
