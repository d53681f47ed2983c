"""Tests for OneTimeLRDrop."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback, LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger

from lightning_grda.callbacks.lr_drop import OneTimeLRDrop
from lightning_grda.optim.grda import GRDA, threshold_increment
from tests.helpers import TinyModule, flat_params, quiet_trainer

# Resumed runs are given only the callbacks under test, not the ModelCheckpoints that wrote the checkpoint.
pytestmark = pytest.mark.filterwarnings("ignore:Be aware that when using `ckpt_path`:UserWarning")

BATCHES = 4  # TinyModule(n=32) with batch size 8


class LRTrace(Callback):
    """Records the learning rates each optimizer step actually uses: {global_step: (epoch, (lr of each group))}."""

    def __init__(self) -> None:
        self.lrs: dict[int, tuple[int, tuple[float, ...]]] = {}

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        self.lrs[trainer.global_step] = (trainer.current_epoch, tuple(g["lr"] for g in optimizer.param_groups))


def make_trainer(root, callbacks, max_epochs: int = 4, logger=False, **kwargs) -> L.Trainer:
    return quiet_trainer(root, callbacks, max_epochs=max_epochs, logger=logger, **kwargs)


def fit(root, callbacks, module=None, ckpt_path=None, **kwargs):
    """Seeded fit of a TinyModule; returns (module, trainer, lr trace)."""
    L.seed_everything(0, verbose=False)
    module = module or TinyModule(n=32)
    trace = LRTrace()
    trainer = make_trainer(root, [*callbacks, trace], **kwargs)
    trainer.fit(module, ckpt_path=ckpt_path)
    return module, trainer, trace.lrs


def checkpoints(dirpath) -> list[ModelCheckpoint]:
    """Every epoch end ("e{epoch}") and every 2 optimizer steps ("s{step}"), all kept."""
    return [
        ModelCheckpoint(
            dirpath=dirpath, filename="e{epoch}", auto_insert_metric_name=False, save_top_k=-1, every_n_epochs=1
        ),
        ModelCheckpoint(
            dirpath=dirpath, filename="s{step}", auto_insert_metric_name=False, save_top_k=-1, every_n_train_steps=2
        ),
    ]


def lr_of(trace, step: int) -> float:
    return trace[step][1][0]


# ----------------------------------------------------------------------------------------------------------------------
# arguments


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, r"Invalid epoch=None, step=None: give exactly one"),
        ({"epoch": 1, "step": 1}, r"Invalid epoch=1, step=1: give exactly one"),
        ({"epoch": -1}, r"Invalid epoch: -1; expected an int >= 0$"),
        ({"epoch": 1.5}, r"Invalid epoch: 1.5"),
        ({"step": -2}, r"Invalid step: -2; expected an int >= 0$"),
        ({"epoch": 1, "factor": 0.0}, r"Invalid factor: 0.0; expected a finite real number > 0.0 and <= 1.0$"),
        ({"epoch": 1, "factor": 1.5}, r"Invalid factor: 1.5; expected a finite real number > 0.0 and <= 1.0$"),
        ({"epoch": 1, "factor": -0.1}, r"Invalid factor: -0.1"),
    ],
)
def test_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        OneTimeLRDrop(**kwargs)


def test_state_key_tells_instances_apart():
    keys = {OneTimeLRDrop(epoch=30).state_key, OneTimeLRDrop(epoch=60).state_key, OneTimeLRDrop(step=30).state_key}
    assert len(keys) == 3
    assert OneTimeLRDrop(epoch=30, factor=0.5).state_key != OneTimeLRDrop(epoch=30).state_key


# ----------------------------------------------------------------------------------------------------------------------
# the drop


def test_drop_at_epoch_removes_scheduler_and_logs_lr(tmp_path):
    drop = OneTimeLRDrop(epoch=2, factor=0.1)
    with pytest.warns(UserWarning, match=r"OneTimeLRDrop owns the learning rate: removed the LR scheduler StepLR"):
        _, trainer, trace = fit(
            tmp_path,
            [drop, LearningRateMonitor(logging_interval="epoch")],
            module=TinyModule(n=32, scheduler=True),  # StepLR would halve the lr every epoch
            logger=CSVLogger(tmp_path),
        )
    assert trainer.lr_scheduler_configs == []
    expected = [0.1] * (2 * BATCHES) + [0.1 * 0.1] * (2 * BATCHES)  # epochs 0, 1 at 0.1; epochs 2, 3 at 0.01
    assert [lr_of(trace, s) for s in range(4 * BATCHES)] == expected
    assert trainer.optimizers[0].param_groups[0]["lr"] == 0.1 * 0.1
    assert (drop.dropped, drop.dropped_at_epoch, drop.dropped_at_step) == (True, 2, 2 * BATCHES)
    with open(Path(trainer.logger.log_dir) / "metrics.csv") as f:
        logged = [float(row["lr-SGD"]) for row in csv.DictReader(f) if row.get("lr-SGD")]
    assert logged == [0.1, 0.1, 0.1 * 0.1, 0.1 * 0.1]


def test_drop_at_step_counts_optimizer_steps(tmp_path):
    # 4 batches per epoch, 2 accumulated per optimizer step: 2 optimizer steps per epoch, 6 in 3 epochs.
    drop = OneTimeLRDrop(step=3, factor=0.5)
    _, trainer, trace = fit(tmp_path, [drop], max_epochs=3, accumulate_grad_batches=2)
    assert sorted(trace) == list(range(6))
    assert [lr_of(trace, s) for s in range(6)] == [0.1, 0.1, 0.1, 0.05, 0.05, 0.05]
    assert (drop.dropped_at_epoch, drop.dropped_at_step) == (1, 3)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"epoch": 2}, r"OneTimeLRDrop\(epoch=2\) will never drop the learning rate: .*max_epochs=2"),
        ({"step": 8}, r"OneTimeLRDrop\(step=8\) will never drop the learning rate: training stops after 8 optimizer"),
    ],
)
def test_drop_beyond_training_warns(tmp_path, kwargs, match):
    drop = OneTimeLRDrop(**kwargs)
    with pytest.warns(UserWarning, match=match):
        _, trainer, _ = fit(tmp_path, [drop], max_epochs=2)
    assert not drop.dropped
    assert trainer.optimizers[0].param_groups[0]["lr"] == 0.1


def test_drop_with_grda_accumulates_threshold_with_new_lr(tmp_path):

    class GRDAModule(TinyModule):
        def configure_optimizers(self):
            return GRDA(self.parameters(), lr=0.1, c=0.005, mu=0.55)

    _, trainer, trace = fit(tmp_path, [OneTimeLRDrop(epoch=1)], module=GRDAModule(n=32), max_epochs=2)
    lrs = [lr_of(trace, s) for s in range(2 * BATCHES)]
    assert lrs == [0.1] * BATCHES + [0.1 * 0.1] * BATCHES
    expected = sum(threshold_increment(n, lr, 0.005, 0.55) for n, lr in enumerate(lrs, start=1))
    assert trainer.optimizers[0].group_thresholds()[0] == pytest.approx(expected, rel=1e-12)


# ----------------------------------------------------------------------------------------------------------------------
# resume: the drop happens exactly once, and the run continues bit for bit


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted 4-epoch run, lr x0.1 at epoch 2, with a checkpoint at every epoch end and every 2 steps."""
    root = tmp_path_factory.mktemp("drop_reference")
    module, _, trace = fit(root, [OneTimeLRDrop(epoch=2), *checkpoints(root / "ckpt")])
    return root / "ckpt", flat_params(module), trace


@pytest.mark.parametrize(
    ("ckpt", "exact"),
    [
        ("e0", True),  # end of epoch 0, before the drop
        ("s8", True),  # last batch of epoch 1, just before the drop: Lightning skips on_train_epoch_start of epoch 2
        ("e2", True),  # end of epoch 2, after the drop
        ("s6", False),  # mid epoch 1, before the drop
        ("s10", False),  # mid epoch 2, after the drop
    ],
)
def test_resume_drops_exactly_once(tmp_path, reference, ckpt, exact):
    ckpt_dir, ref_params, ref_trace = reference
    path = ckpt_dir / f"{ckpt}.ckpt"
    drop = OneTimeLRDrop(epoch=2)
    module, trainer, trace = fit(tmp_path, [drop], ckpt_path=path)
    assert trace, "the resumed run trained"
    assert trace == {s: ref_trace[s] for s in trace}  # same lr at every step, the drop included
    assert max(trace) == max(ref_trace)
    assert trainer.optimizers[0].param_groups[0]["lr"] == 0.1 * 0.1  # dropped once, not twice
    assert (drop.dropped, drop.dropped_at_epoch, drop.dropped_at_step) == (True, 2, 2 * BATCHES)
    if exact:
        # Mid-epoch resumes replay a non-resumable dataloader from its start (Lightning warns), so only
        # epoch-end checkpoints continue bit for bit.
        assert torch.equal(flat_params(module), ref_params)


def test_resume_without_callback_state_drops_late_with_warning(tmp_path, reference):
    ckpt_dir, _, _ = reference
    path = ckpt_dir / "e2.ckpt"
    drop = OneTimeLRDrop(epoch=1, factor=0.5)  # another state key: the checkpoint has no record of it
    with pytest.warns(UserWarning, match=r"OneTimeLRDrop was due at epoch 1 but training is at epoch 3"):
        _, trainer, trace = fit(tmp_path, [drop], ckpt_path=path)
    assert set(lr_of(trace, s) for s in trace) == {0.1 * 0.1 * 0.5}
    assert drop.dropped_at_epoch == 3


def test_resume_at_step_with_grda(tmp_path):

    class GRDAModule(TinyModule):
        def configure_optimizers(self):
            return GRDA(self.parameters(), lr=0.1, c=0.005, mu=0.55)

    ref_module, ref_trainer, ref_trace = fit(
        tmp_path / "ref",
        [OneTimeLRDrop(step=6), *checkpoints(tmp_path / "ckpt")],
        module=GRDAModule(n=32),
        max_epochs=3,
    )
    assert math.isclose(lr_of(ref_trace, 5), 0.1)
    assert math.isclose(lr_of(ref_trace, 6), 0.01)
    for ckpt in ("e0", "e1"):  # steps 4 and 8: before and after the drop
        path = tmp_path / "ckpt" / f"{ckpt}.ckpt"
        drop = OneTimeLRDrop(step=6)
        module, trainer, trace = fit(tmp_path / ckpt, [drop], module=GRDAModule(n=32), ckpt_path=path, max_epochs=3)
        assert trace == {s: ref_trace[s] for s in trace}
        assert drop.dropped_at_step == 6
        assert torch.equal(flat_params(module), flat_params(ref_module))
        assert trainer.optimizers[0].group_thresholds() == ref_trainer.optimizers[0].group_thresholds()


def test_a_reused_instance_drops_again_in_a_new_fit(tmp_path):
    drop = OneTimeLRDrop(epoch=1, factor=0.1)
    fit(tmp_path / "a", [drop], max_epochs=2)
    assert drop.dropped
    _, trainer, _ = fit(tmp_path / "b", [drop], max_epochs=2)  # a new module: its optimizer starts at 0.1 again
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.01)
    assert drop.dropped_at_epoch == 1
