import pytest
import torch
from lightning.pytorch import LightningModule, Trainer
from torch import nn
from torch.nn.utils import prune

from lightning_grda.callbacks import SparseExport
from lightning_grda.cli import main
from lightning_grda.export import load_sparse


class Tiny(LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 2))
        prune.l1_unstructured(self.net[0], "weight", amount=0.5)

    def training_step(self, batch, batch_idx):
        return self.net(batch[0]).pow(2).mean()

    def train_dataloader(self):
        return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(8, 6)), batch_size=4)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _trainer(tmp_path, callback):
    return Trainer(
        default_root_dir=tmp_path,
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[callback],
    )


def test_writes_baked_weights_at_fit_end(tmp_path):
    model = Tiny()
    callback = SparseExport()
    _trainer(tmp_path, callback).fit(model)
    assert callback.last_path == tmp_path / "model.safetensors"
    state = load_sparse(callback.last_path)
    assert set(state) == {"net.0.weight", "net.0.bias", "net.2.weight", "net.2.bias"}
    assert torch.equal(state["net.0.weight"], model.net[0].weight_orig * model.net[0].weight_mask)
    assert int((state["net.0.weight"] == 0).sum()) == 24


def test_explicit_path_and_not_after_validate(tmp_path):
    callback = SparseExport(tmp_path / "sub" / "w.safetensors")
    trainer = _trainer(tmp_path, callback)
    trainer.fit(Tiny())
    assert (tmp_path / "sub" / "w.safetensors").is_file()
    (tmp_path / "sub" / "w.safetensors").unlink()
    model = Tiny()
    model.validation_step = lambda batch, *args: None
    model.val_dataloader = model.train_dataloader
    trainer.validate(model)
    assert not (tmp_path / "sub" / "w.safetensors").exists()


def test_bad_path():
    with pytest.raises(ValueError, match="Invalid path: 3"):
        SparseExport(3)


def test_default_job_writes_the_file_and_test_evaluates_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    quick = ["--trainer.max_epochs=1", "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=1"]
    quick += ["--trainer.limit_test_batches=1", "--trainer.enable_progress_bar=false", "--trainer.logger=false"]
    cli = main(["fit", *quick, "--test_after_fit=false", f"--trainer.default_root_dir={tmp_path}"])
    path = tmp_path / "model.safetensors"
    state = load_sparse(path)
    for k, v in cli.model.state_dict().items():
        assert torch.equal(state[k], v), k
    test = main(["test", *quick, f"--init_from={path}"])
    assert "test_acc" in test.trainer.callback_metrics
    for k, v in test.model.state_dict().items():
        assert torch.equal(state[k], v), k
