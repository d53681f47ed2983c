from __future__ import annotations

import logging
import math
import warnings

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.cli import LightningCLI
from torch import nn

from lightning_grda.mixin import GRDAMixin
from lightning_grda.optim.grda import GRDA
from tests.helpers import TinyModule, TinyNet, assert_resume_is_exact, flat_params, quiet_trainer, random_loader


class Pruned(GRDAMixin, TinyModule):
    """An existing module, left unedited."""


class Net(GRDAMixin, L.LightningModule):
    """A new module that declares the gRDA hyperparameters itself."""

    def __init__(self, lr: float = 0.1, c: float = 0.005, mu: float = 0.55) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = TinyNet()

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self.net(x), y)

    def train_dataloader(self):
        return random_loader(32)


class SelectedHparams(L.LightningModule):
    """An existing module that saves only some of its arguments."""

    def __init__(self, lr: float = 0.1, width: int = 16) -> None:
        super().__init__()
        self.save_hyperparameters("lr")
        self.net = TinyNet(hidden=width)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self.net(x), y)

    def train_dataloader(self):
        return random_loader(32)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


class PrunedSelected(GRDAMixin, SelectedHparams):
    pass


class NoHparams(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = TinyNet()


class PrunedNoHparams(GRDAMixin, NoHparams):
    pass


def _trainer(tmp_path, **kwargs) -> L.Trainer:
    return quiet_trainer(tmp_path, **{"limit_train_batches": 2, "enable_checkpointing": False, **kwargs})


def _defaults(opt: torch.optim.Optimizer) -> tuple[float, float, float]:
    return opt.defaults["lr"], opt.defaults["c"], opt.defaults["mu"]


# -- hyperparameter resolution -------------------------------------------------------------------------------------


def test_new_module_takes_its_own_hparams():
    opt = Net(lr=0.2, c=0.01, mu=0.6).configure_optimizers()
    assert isinstance(opt, GRDA)
    assert _defaults(opt) == (0.2, 0.01, 0.6)
    assert len(opt.param_groups) == 1
    assert len(opt.param_groups[0]["params"]) == len(list(Net().parameters()))


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, (0.1, 0.005, 0.55)),  # their lr (hparams), GRDA's c and mu
        ({"lr": 0.3}, (0.3, 0.005, 0.55)),
        ({"lr": 0.3, "grda_lr": 0.02, "grda_c": 0.01, "grda_mu": 0.7}, (0.02, 0.01, 0.7)),
    ],
)
def test_existing_module_resolution_order(kwargs, expected):
    model = Pruned(**kwargs)
    opt = model.configure_optimizers()
    assert isinstance(opt, GRDA)
    assert _defaults(opt) == expected
    assert model.grda_hyperparameters()["lr"][1] == ("grda_lr" if "grda_lr" in kwargs else "hparams['lr']")


def test_explicit_beats_module_hparams_named_c_and_mu():
    model = Net(lr=0.2, c=0.01, mu=0.6)
    model.grda_c = 0.02  # what `grda_c=` stores
    assert _defaults(model.configure_optimizers()) == (0.2, 0.02, 0.6)


def test_module_without_hparams_gets_grda_defaults_with_a_warning_for_the_lr():
    with pytest.warns(UserWarning, match=r"PrunedNoHparams has no `lr` or `learning_rate` hyperparameter .* lr=0\.01"):
        opt = PrunedNoHparams().configure_optimizers()
    assert _defaults(opt) == (0.01, 0.005, 0.55)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _defaults(PrunedNoHparams(grda_lr=0.5).configure_optimizers()) == (0.5, 0.005, 0.55)


class LearningRateModule(NoHparams):
    """Names its learning rate as Lightning's examples and Tuner.lr_find do."""

    def __init__(self, learning_rate: float = 0.2, lr: float | None = None) -> None:
        super().__init__()
        self.save_hyperparameters()


class PrunedLearningRate(GRDAMixin, LearningRateModule):
    pass


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [({}, (0.2, "hparams['learning_rate']")), ({"lr": 0.3}, (0.3, "hparams['lr']"))],  # `lr` first
)
def test_learning_rate_hyperparameter_is_taken_after_lr_and_named_in_the_log(kwargs, expected, caplog):
    model = PrunedLearningRate(**kwargs)
    assert model.grda_hyperparameters()["lr"] == expected
    with caplog.at_level(logging.INFO):
        assert model.configure_optimizers().defaults["lr"] == expected[0]
    assert f"lr={expected[0]!r} ({expected[1]})" in caplog.text


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"grda_lr": -0.1}, r"Invalid grda_lr: -0\.1; expected a finite real number >= 0\.0$"),
        ({"grda_c": float("nan")}, r"Invalid grda_c: nan"),
        ({"grda_c": "0.1"}, r"Invalid grda_c: '0\.1'"),
        ({"grda_mu": 0.0}, r"Invalid grda_mu: 0\.0; expected a finite real number > 0\.0$"),
        ({"grda_exempt_norm_and_bias": 1}, r"Invalid grda_exempt_norm_and_bias: 1; expected True or False$"),
    ],
)
def test_invalid_grda_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Pruned(**kwargs)


# -- class definition checks ---------------------------------------------------------------------------------------


def test_mixin_on_a_plain_module_is_a_type_error():
    with pytest.raises(TypeError, match=r"GRDAMixin must be mixed into a LightningModule: .*Plain is not a subclass"):

        class Plain(GRDAMixin, nn.Module):
            pass


def test_mixin_after_lightning_module_is_a_type_error():
    with pytest.raises(
        TypeError, match=r"LightningModule\.configure_optimizers comes before GRDAMixin.*list GRDAMixin"
    ):

        class Late(L.LightningModule, GRDAMixin):
            pass


def test_mixin_after_their_module_is_a_type_error():
    with pytest.raises(
        TypeError, match=r"TinyModule\.configure_optimizers comes before .*Late\(GRDAMixin, TinyModule\)"
    ):

        class Late(TinyModule, GRDAMixin):
            pass


def test_subclass_may_override_configure_optimizers():
    class Custom(Pruned):
        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.5)

    assert isinstance(Custom().configure_optimizers(), torch.optim.SGD)


# -- exempting biases and normalisation ----------------------------------------------------------------------------


def test_exempt_norm_and_bias_group_has_c_zero(tmp_path):
    L.seed_everything(0)
    model = Pruned(grda_exempt_norm_and_bias=True, grda_c=0.5)
    opt = model.configure_optimizers()
    pruned, kept = opt.param_groups
    assert [p is q for p, q in zip(pruned["params"], [model.net.fc1.weight, model.net.fc2.weight])] == [True, True]
    assert {id(p) for p in kept["params"]} == {
        id(p) for p in (model.net.fc1.bias, model.net.norm.weight, model.net.norm.bias, model.net.fc2.bias)
    }
    assert kept["c"] == 0.0
    assert pruned["c"] == 0.5
    trainer = _trainer(tmp_path)
    trainer.fit(model)
    thresholds = trainer.optimizers[0].group_thresholds()
    assert thresholds[0] > 0
    assert thresholds[1] == 0.0
    assert (model.net.fc1.weight == 0).any()
    assert not any((p == 0).any() for p in kept["params"])


def test_default_prunes_every_parameter():
    model = Pruned()
    (group,) = model.configure_optimizers().param_groups
    assert len(group["params"]) == len(list(model.parameters()))


# -- LightningCLI --------------------------------------------------------------------------------------------------


def test_lightning_cli_sees_their_args_and_the_mixins(tmp_path):
    cli = LightningCLI(
        Pruned,
        run=False,
        args=[
            "--model.grda_c=0.01",
            "--model.lr=0.2",
            "--model.n=16",
            "--trainer.logger=false",
            f"--trainer.default_root_dir={tmp_path}",
        ],
    )
    assert set(cli.config.model.keys()) >= {"grda_lr", "grda_c", "grda_mu", "grda_exempt_norm_and_bias", "lr", "n"}
    assert cli.model.hparams.n == 16
    opt = cli.model.configure_optimizers()
    assert isinstance(opt, GRDA)
    assert _defaults(opt) == (0.2, 0.01, 0.55)


# -- hparams in checkpoints ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "kwargs"),
    [(Pruned, {"lr": 0.2, "n": 16}), (PrunedSelected, {"lr": 0.2}), (PrunedNoHparams, {})],
    ids=["save_hyperparameters()", "save_hyperparameters('lr')", "none"],
)
def test_grda_arguments_survive_load_from_checkpoint(tmp_path, cls, kwargs):
    model = cls(grda_c=0.01, grda_mu=0.6, grda_exempt_norm_and_bias=True, **kwargs)
    assert model.hparams["grda_c"] == 0.01
    for key, value in kwargs.items():
        assert model.hparams[key] == value  # the module's own hparams are kept
    trainer = _trainer(tmp_path, max_steps=1)
    trainer.strategy.connect(model)
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)
    loaded = cls.load_from_checkpoint(path)
    assert (loaded.grda_c, loaded.grda_mu, loaded.grda_exempt_norm_and_bias) == (0.01, 0.6, True)
    assert loaded.grda_hyperparameters() == model.grda_hyperparameters()
    for key, value in kwargs.items():
        assert loaded.hparams[key] == value


# -- fine-tuning vs resuming ---------------------------------------------------------------------------------------


class RecordFirstStep(Callback):
    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        if not hasattr(self, "weights"):
            self.weights = {n: p.detach().clone() for n, p in pl_module.named_parameters()}
            self.grads = {n: p.grad.detach().clone() for n, p in pl_module.named_parameters()}


@pytest.mark.parametrize("how", ["load_from_checkpoint", "load_state_dict"])
def test_fine_tuning_starts_the_dual_average_at_the_loaded_weights(tmp_path, how):
    L.seed_everything(1)
    trained = TinyModule(lr=0.3, n=16)  # an SGD project's trained checkpoint
    _trainer(tmp_path / "sgd").fit(trained)
    path = tmp_path / "sgd.ckpt"
    trained.trainer.save_checkpoint(path)
    saved = torch.load(path, weights_only=True)["state_dict"]

    if how == "load_from_checkpoint":
        model = Pruned.load_from_checkpoint(path, grda_c=0.01)
    else:
        L.seed_everything(2)
        model = Pruned(lr=0.3, n=16, grda_c=0.01)
        model.load_state_dict(torch.load(path, weights_only=True)["state_dict"])
    record = RecordFirstStep()
    trainer = _trainer(tmp_path / "grda", max_steps=1, callbacks=[record])
    trainer.fit(model)  # no ckpt_path: a new gRDA run from these weights

    opt = trainer.optimizers[0]
    assert isinstance(opt, GRDA)
    for name, p in model.named_parameters():
        w0, g = record.weights[name], record.grads[name]
        assert torch.equal(w0, saved[name])
        assert torch.equal(opt.state[p]["dual"], w0.add(g, alpha=-0.3))
        assert opt.state[p]["step"].item() == 1


def _resume_run(tmp_path, epochs: int, ckpt_path=None) -> tuple[L.LightningModule, L.Trainer]:
    L.seed_everything(3)
    model = Pruned(lr=0.2, n=32, grda_c=0.05, grda_mu=0.6)
    trainer = _trainer(tmp_path, max_epochs=epochs, limit_train_batches=None)
    trainer.fit(model, ckpt_path=ckpt_path)
    return model, trainer


def test_resume_equals_uninterrupted_run(tmp_path):
    full_trainer, _ = assert_resume_is_exact(tmp_path, _resume_run, epochs=3)
    assert full_trainer.global_step == 12
    assert isinstance(full_trainer.optimizers[0], GRDA)


# -- precision ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("precision", ["bf16-mixed", "bf16-true"])
def test_bf16_fits_and_prunes(tmp_path, precision):
    L.seed_everything(4)
    model = Pruned(n=32, grda_c=1.0, grda_mu=0.6)
    trainer = _trainer(tmp_path, precision=precision, max_steps=4, limit_train_batches=None)
    trainer.fit(model)
    opt = trainer.optimizers[0]
    expected = torch.bfloat16 if precision == "bf16-true" else torch.float32
    assert all(p.dtype == expected for p in model.parameters())
    assert all(opt.state[p]["dual"].dtype == torch.float32 for p in model.parameters())
    flat = flat_params(model)
    assert flat.isfinite().all()
    assert 0 < (flat == 0).double().mean().item() < 1
    assert math.isclose(opt.state[model.net.fc1.weight]["step"].item(), 4)


def test_exempt_norm_and_bias_refuses_lightning_fsdp1():
    from types import SimpleNamespace

    from lightning.pytorch.strategies import FSDPStrategy, ModelParallelStrategy

    module = Pruned(grda_exempt_norm_and_bias=True)
    module._trainer = SimpleNamespace(strategy=FSDPStrategy())
    with pytest.raises(ValueError, match=r"Invalid strategy: FSDPStrategy\. grda_exempt_norm_and_bias .*fully_shard"):
        module.configure_optimizers()
    module._trainer = SimpleNamespace(strategy=ModelParallelStrategy())  # FSDP2: supported
    assert [g["c"] for g in module.configure_optimizers().param_groups][1] == 0.0
    module = Pruned()  # without the exemption, FSDP1 gets GRDA as is
    module._trainer = SimpleNamespace(strategy=FSDPStrategy())
    assert isinstance(module.configure_optimizers(), GRDA)
