"""Tests for the learning-rate ownership rules (lightning_grda/callbacks/lr_owners.py), on stand-in trainers."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import pytest
import torch
from lightning.pytorch.utilities.types import LRSchedulerConfig

from lightning_grda.callbacks import GRDASwap, HoldDecayLR, OneTimeLRDrop, SparsityMonitor
from lightning_grda.callbacks.lr_owners import check_lr_owners, remove_lr_schedulers


@pytest.mark.parametrize(
    "callbacks",
    [
        [GRDASwap(), HoldDecayLR()],
        [GRDASwap(), OneTimeLRDrop(epoch=1), OneTimeLRDrop(epoch=2)],  # drops compose
        [SparsityMonitor(), OneTimeLRDrop(epoch=1), GRDASwap()],  # a drop scales whatever optimizer is there
    ],
)
def test_owners_that_agree_pass(callbacks):
    check_lr_owners(SimpleNamespace(callbacks=callbacks))


@pytest.mark.parametrize(
    ("callbacks", "match"),
    [
        (
            [OneTimeLRDrop(epoch=1), HoldDecayLR()],
            r"^Invalid callbacks: HoldDecayLR sets the learning rate itself and cannot be combined with "
            r"\['OneTimeLRDrop'\]$",
        ),
        ([HoldDecayLR(), HoldDecayLR(hold=0.1)], r"^Invalid callbacks: HoldDecayLR .* with \['HoldDecayLR'\]$"),
        (
            [HoldDecayLR(), GRDASwap()],
            r"^Invalid callbacks order: \['HoldDecayLR'\] listed before GRDASwap would record the replaced "
            r"optimizer's learning rates at fit start; list GRDASwap first$",
        ),
    ],
)
def test_owners_that_disagree_are_refused_whichever_asks(callbacks, match):
    with pytest.raises(ValueError, match=match):
        check_lr_owners(SimpleNamespace(callbacks=callbacks))


def _trainer_with(*schedulers):
    return SimpleNamespace(strategy=SimpleNamespace(lr_scheduler_configs=[LRSchedulerConfig(s) for s in schedulers]))


def test_remove_lr_schedulers_warns_per_scheduler_and_restores_initial_lr():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1)
    warmup = torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.25, total_iters=5)
    step = torch.optim.lr_scheduler.StepLR(opt, step_size=1)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.025)  # the warm-up already changed it
    trainer = _trainer_with(warmup, step)
    configs = trainer.strategy.lr_scheduler_configs
    with pytest.warns(UserWarning, match="MyCallback owns the learning rate") as record:
        remove_lr_schedulers(trainer, owner="MyCallback")
    messages = [str(w.message) for w in record]
    assert len(messages) == 2
    assert "MyCallback owns the learning rate: removed the LR scheduler LinearLR" in messages[0]
    assert "reset to the configured `initial_lr` (0.025" in messages[0]
    assert "removed the LR scheduler StepLR" in messages[1]
    assert configs == []  # emptied in place
    assert opt.param_groups[0]["lr"] == 0.1


def test_remove_lr_schedulers_can_keep_lr_and_is_silent_without_schedulers():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1)
    trainer = _trainer_with(torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.5))
    with pytest.warns(UserWarning, match=r"Owner owns the learning rate: removed the LR scheduler LinearLR"):
        remove_lr_schedulers(trainer, owner="Owner", restore_initial_lr=False)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.05)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        remove_lr_schedulers(trainer, owner="Owner")  # nothing left: no warning
