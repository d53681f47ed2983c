from __future__ import annotations

import logging

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.core.optimizer import LightningOptimizer
from lightning.pytorch.strategies import DDPStrategy
from torch import nn

from lightning_grda.callbacks.lr_schedule import HoldDecayLR
from lightning_grda.callbacks.swap import GRDASwap
from lightning_grda.mixin import GRDAMixin
from lightning_grda.optim.grda import GRDA
from tests.helpers import TinyModule, TinyNet, assert_resume_is_exact, flat_params, quiet_trainer, random_loader


class Pruned(GRDAMixin, TinyModule):
    pass


class TwoOptimizers(L.LightningModule):
    """A GAN-shaped module: manual optimization, two networks, two SGD optimizers with momentum."""

    def __init__(self, scheduler: bool = False) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.scheduler = scheduler
        self.a = TinyNet()
        self.b = TinyNet()
        self.seen: list[type] = []

    def training_step(self, batch, batch_idx):
        x, y = batch
        for opt, net in zip(self.optimizers(), (self.a, self.b)):
            self.seen.append(type(opt.optimizer))
            loss = nn.functional.cross_entropy(net(x), y)
            opt.zero_grad()
            self.manual_backward(loss)
            opt.step()

    def train_dataloader(self):
        return random_loader(16)

    def configure_optimizers(self):
        opts = [torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9) for net, lr in ((self.a, 0.1), (self.b, 0.2))]
        if not self.scheduler:
            return opts
        return opts, [torch.optim.lr_scheduler.StepLR(opts[0], step_size=1)]


class MixinAndSwap(L.LightningModule):
    """One DDP spawn for both paths (spawning costs seconds): ``a`` is a GRDAMixin module whose own
    ``configure_optimizers`` gives its GRDA; ``b`` is trained by an SGD that GRDASwap converts."""

    def __init__(self) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.a = Pruned(lr=0.2, grda_c=0.3, grda_mu=0.6)
        self.b = TinyNet()

    def training_step(self, batch, batch_idx):
        x, y = batch
        # One backward over both networks, so that DDP reduces every gradient in it.
        loss = nn.functional.cross_entropy(self.a(x), y) + nn.functional.cross_entropy(self.b(x), y)
        opts = self.optimizers()
        for opt in opts:
            opt.zero_grad()
        self.manual_backward(loss)
        for opt in opts:
            opt.step()

    def train_dataloader(self):
        return random_loader(32)

    def configure_optimizers(self):
        return [self.a.configure_optimizers(), torch.optim.SGD(self.b.parameters(), lr=0.2)]


class SaveFlatParams(Callback):
    """Each rank writes its parameters; spawn pickles this by reference, so it lives in an importable module."""

    def __init__(self, directory) -> None:
        self.directory = directory

    def on_fit_end(self, trainer, pl_module):
        groups = [(type(opt).__name__, opt.param_groups[0]["c"]) for opt in trainer.optimizers]
        torch.save(
            {"params": flat_params(pl_module), "groups": groups}, self.directory / f"rank{trainer.global_rank}.pt"
        )


def _trainer(tmp_path, **kwargs) -> L.Trainer:
    return quiet_trainer(tmp_path, **{"limit_train_batches": 2, "enable_checkpointing": False, **kwargs})


# -- arguments ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"c": -0.1}, r"Invalid c: -0\.1; expected a finite real number >= 0\.0$"),
        ({"mu": 0.0}, r"Invalid mu: 0\.0; expected a finite real number > 0\.0$"),
        ({"lr": -1.0}, r"Invalid lr: -1\.0; expected a finite real number >= 0\.0$"),
        ({"lr": float("inf")}, r"Invalid lr: inf"),
        ({"exempt_norm_and_bias": "yes"}, r"Invalid exempt_norm_and_bias: 'yes'; expected True or False$"),
    ],
)
def test_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GRDASwap(**kwargs)


def test_state_key_names_the_arguments_and_no_state_is_saved():
    swap = GRDASwap(c=0.01, mu=0.6, lr=0.2, exempt_norm_and_bias=True)
    assert swap.state_key == "GRDASwap{'c': 0.01, 'mu': 0.6, 'lr': 0.2, 'exempt_norm_and_bias': True}"
    assert swap.state_dict() == {}


# -- the swap -----------------------------------------------------------------------------------------------------


def test_swap_replaces_sgd_keeping_lr_and_dropping_momentum(tmp_path, caplog):
    L.seed_everything(0)
    model = TinyModule(lr=0.2)
    trainer = _trainer(tmp_path, callbacks=[GRDASwap(c=0.01, mu=0.6)])
    with caplog.at_level(logging.INFO):
        trainer.fit(model)
    assert "GRDASwap: replaced SGD with GRDA(c=0.01, mu=0.6, lr=0.2) over 1 param group(s); dropped momentum=0.9" in (
        caplog.text
    )
    (opt,) = trainer.optimizers
    assert isinstance(opt, GRDA)
    (group,) = opt.param_groups
    assert (group["lr"], group["c"], group["mu"]) == (0.2, 0.01, 0.6)
    assert "momentum" not in group
    assert len(group["params"]) == len(list(model.parameters()))
    assert opt.state[model.net.fc1.weight]["step"].item() == 2


def test_swap_equals_the_mixin_bit_for_bit(tmp_path):
    L.seed_everything(1)
    swapped = TinyModule(lr=0.2, n=32)
    _trainer(tmp_path / "swap", limit_train_batches=None, callbacks=[GRDASwap(c=0.05, mu=0.6)]).fit(swapped)
    L.seed_everything(1)
    mixed = Pruned(lr=0.2, n=32, grda_c=0.05, grda_mu=0.6)
    _trainer(tmp_path / "mixin", limit_train_batches=None).fit(mixed)
    assert (flat_params(swapped) == 0).any()
    assert torch.equal(flat_params(swapped), flat_params(mixed))


def test_swap_lr_overrides_every_group(tmp_path):
    trainer = _trainer(tmp_path, max_steps=1, callbacks=[GRDASwap(lr=0.05)])
    trainer.fit(TinyModule(lr=0.2))
    assert [g["lr"] for g in trainer.optimizers[0].param_groups] == [0.05]


def test_swap_exempts_norm_and_bias_in_groups_after_the_pruned_ones(tmp_path):
    model = TinyModule()
    trainer = _trainer(tmp_path, callbacks=[GRDASwap(c=0.5, exempt_norm_and_bias=True)])
    trainer.fit(model)
    pruned, kept = trainer.optimizers[0].param_groups
    assert [id(p) for p in pruned["params"]] == [id(model.net.fc1.weight), id(model.net.fc2.weight)]
    assert (pruned["c"], kept["c"], kept["lr"]) == (0.5, 0.0, 0.1)
    assert trainer.optimizers[0].group_thresholds()[1] == 0.0
    assert not any((p == 0).any() for p in kept["params"])


def test_named_param_groups_keep_their_names_when_split(tmp_path):
    class Named(TinyModule):
        def configure_optimizers(self):
            return torch.optim.SGD([{"params": list(self.named_parameters()), "name": "all"}], lr=0.1)

    trainer = _trainer(tmp_path, max_steps=1, callbacks=[GRDASwap(exempt_norm_and_bias=True)])
    trainer.fit(Named())
    pruned, kept = trainer.optimizers[0].param_groups
    assert pruned["param_names"] == ["net.fc1.weight", "net.fc2.weight"]
    assert kept["param_names"] == ["net.fc1.bias", "net.norm.weight", "net.norm.bias", "net.fc2.bias"]
    assert pruned["name"] == kept["name"] == "all"


def test_scheduler_is_removed_with_a_warning(tmp_path):
    model = TinyModule(lr=0.2, scheduler=True)
    trainer = _trainer(tmp_path, max_epochs=2, callbacks=[GRDASwap()])
    with pytest.warns(UserWarning, match=r"GRDASwap owns the learning rate: removed the LR scheduler StepLR"):
        trainer.fit(model)
    assert trainer.lr_scheduler_configs == []
    assert trainer.optimizers[0].param_groups[0]["lr"] == 0.2  # StepLR(gamma=0.5) would have halved it


def test_module_already_on_grda_is_left_as_configured(tmp_path):
    model = Pruned(grda_c=0.02)
    trainer = _trainer(tmp_path, max_steps=1, callbacks=[GRDASwap(c=0.3)])
    with pytest.warns(UserWarning, match=r"already configures GRDA \(1 of 1 optimizers\), left as configured"):
        trainer.fit(model)
    assert trainer.optimizers[0].param_groups[0]["c"] == 0.02


def test_several_optimizers_are_all_converted_under_manual_optimization(tmp_path):
    model = TwoOptimizers()
    trainer = _trainer(tmp_path, callbacks=[GRDASwap(c=0.01)])
    with pytest.warns(UserWarning, match=r"GRDASwap converted 2 optimizers \['SGD', 'SGD'\] to GRDA"):
        trainer.fit(model)
    assert model.seen == [GRDA] * 4  # `self.optimizers()` wraps the swapped optimizers
    assert all(isinstance(opt, LightningOptimizer) for opt in model.optimizers())
    first, second = trainer.optimizers
    assert [g["lr"] for g in first.param_groups + second.param_groups] == [0.1, 0.2]
    assert "momentum" not in first.param_groups[0]
    assert {id(p) for p in second.param_groups[0]["params"]} == {id(p) for p in model.b.parameters()}
    assert first.state[model.a.fc1.weight]["step"].item() == 2


@pytest.mark.parametrize("optimizer", [torch.optim.Adam, torch.optim.RMSprop, torch.optim.Adagrad])
def test_an_adaptive_optimizer_without_lr_is_refused_with_how_to_pass_one(tmp_path, optimizer):
    class Adaptive(TinyModule):
        def configure_optimizers(self):
            return optimizer(self.parameters(), lr=1e-4)

    with pytest.raises(
        ValueError, match=r"^Invalid lr: None; GRDASwap would keep the lr of " + optimizer.__name__
    ) as err:
        _trainer(tmp_path, callbacks=[GRDASwap()]).fit(Adaptive())
    assert "(0.0001), an adaptive optimizer" in str(err.value)
    assert "gRDA's lr is a plain SGD learning rate (the paper: 0.1 at batch size 256" in str(err.value)
    assert "pass one, GRDASwap(lr=0.1), or `init_args: {lr: 0.1}` under GRDASwap in a config" in str(err.value)
    trainer = _trainer(tmp_path, max_steps=1, callbacks=[GRDASwap(lr=0.1)])
    trainer.fit(Adaptive())  # an explicit lr replaces it
    assert [group["lr"] for group in trainer.optimizers[0].param_groups] == [0.1]


def test_manual_optimization_with_a_scheduler_is_refused(tmp_path):
    trainer = _trainer(tmp_path, callbacks=[GRDASwap()])
    with pytest.raises(ValueError, match=r"TwoOptimizers uses manual optimization and configures LR schedulers"):
        trainer.fit(TwoOptimizers(scheduler=True))


def test_maximize_is_refused(tmp_path):
    class Maximizing(TinyModule):
        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1, maximize=True)

    with pytest.raises(ValueError, match=r"param group 0 of optimizer 0 \(SGD\): maximize=True"):
        _trainer(tmp_path, callbacks=[GRDASwap()]).fit(Maximizing())


def test_module_without_optimizer_is_refused(tmp_path):
    class NoOptimizer(TinyModule):
        def configure_optimizers(self):
            return None

    with pytest.raises(ValueError, match=r"NoOptimizer\.configure_optimizers configures no optimizer"):
        _trainer(tmp_path, callbacks=[GRDASwap()]).fit(NoOptimizer())


def test_hold_decay_listed_before_the_swap_is_refused(tmp_path):
    trainer = _trainer(tmp_path, callbacks=[HoldDecayLR(), GRDASwap()])
    with pytest.raises(ValueError, match=r"\['HoldDecayLR'\] listed before GRDASwap .* list GRDASwap first"):
        trainer.fit(TinyModule())


def test_hold_decay_after_the_swap_sees_the_swapped_lr(tmp_path):
    hold = HoldDecayLR()
    trainer = _trainer(tmp_path, max_steps=1, callbacks=[GRDASwap(lr=0.05), hold])
    trainer.fit(TinyModule(lr=0.2))
    assert hold.base_lrs == [[0.05]]


# -- resuming -----------------------------------------------------------------------------------------------------


def _run(tmp_path, epochs: int, ckpt_path=None) -> tuple[L.LightningModule, L.Trainer]:
    L.seed_everything(2)
    model = TinyModule(lr=0.2, n=32, scheduler=True)
    trainer = _trainer(tmp_path, max_epochs=epochs, limit_train_batches=None, callbacks=[GRDASwap(c=0.05, mu=0.6)])
    with pytest.warns(UserWarning, match="removed the LR scheduler"):
        trainer.fit(model, ckpt_path=ckpt_path)
    return model, trainer


def test_resume_equals_uninterrupted_run(tmp_path):
    full_trainer, path = assert_resume_is_exact(tmp_path, _run, epochs=3)
    assert isinstance(full_trainer.optimizers[0], GRDA)
    assert "lr_schedulers" in torch.load(path, weights_only=False)  # the removed scheduler's state is ignored


def test_resuming_a_checkpoint_of_another_optimizer_is_refused(tmp_path):
    model = TinyModule()
    trainer = _trainer(tmp_path / "sgd")
    trainer.fit(model)
    path = tmp_path / "sgd.ckpt"
    trainer.save_checkpoint(path)
    with pytest.raises(ValueError, match=r"not a GRDA state .*fine-tune"):
        _trainer(tmp_path / "grda", max_epochs=2, callbacks=[GRDASwap()]).fit(TinyModule(), ckpt_path=path)


# -- LightningCLI's own --optimizer -------------------------------------------------------------------------------


def test_lightning_cli_optimizer_argument_gives_grda(tmp_path):
    cli = LightningCLI(
        TinyModule,
        run=False,
        args=[
            "--optimizer=lightning_grda.optim.grda.GRDA",
            "--optimizer.c=0.01",
            "--optimizer.lr=0.2",
            "--trainer.logger=false",
            f"--trainer.default_root_dir={tmp_path}",
        ],
    )
    opt = cli.model.configure_optimizers()
    assert isinstance(opt, GRDA)
    assert (opt.defaults["lr"], opt.defaults["c"], opt.defaults["mu"]) == (0.2, 0.01, 0.55)


# -- DDP ----------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_ddp_ranks_agree_with_the_mixin_and_the_swap(tmp_path):
    L.seed_everything(3)
    model = MixinAndSwap()
    initial = flat_params(model)
    strategy = DDPStrategy(process_group_backend="gloo", start_method="spawn")
    callbacks = [GRDASwap(c=0.2, mu=0.6), SaveFlatParams(tmp_path)]
    trainer = _trainer(
        tmp_path, devices=2, strategy=strategy, max_epochs=2, limit_train_batches=None, callbacks=callbacks
    )
    trainer.fit(model)
    saved = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert saved[0]["groups"] == saved[1]["groups"] == [("GRDA", 0.3), ("GRDA", 0.2)]
    rank0, rank1 = (s["params"] for s in saved)
    assert torch.equal(rank0, rank1)
    assert not torch.equal(rank0, initial)
    n_a = sum(p.numel() for p in model.a.parameters())
    for part0, part1 in ((rank0[:n_a], rank1[:n_a]), (rank0[n_a:], rank1[n_a:])):  # the mixin's, the swap's
        assert (part0 == 0).sum().item() == (part1 == 0).sum().item() > 0
