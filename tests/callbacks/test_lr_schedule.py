"""Tests for HoldDecayLR and hold_decay_factor."""

from __future__ import annotations

import pytest
import torch

from lightning_grda.callbacks.lr_drop import OneTimeLRDrop
from lightning_grda.callbacks.lr_schedule import HoldDecayLR, hold_decay_factor
from tests.callbacks.test_lr_drop import checkpoints, fit, lr_of
from tests.helpers import TinyModule, flat_params

# Resumed runs are given only the callbacks under test, not the ModelCheckpoints that wrote the checkpoint.
pytestmark = pytest.mark.filterwarnings("ignore:Be aware that when using `ckpt_path`:UserWarning")

# ----------------------------------------------------------------------------------------------------------------------
# the factor, against hand-computed values


@pytest.mark.parametrize(
    ("progress", "kwargs", "expected"),
    [
        (0.0, {}, 1.0),
        (0.5, {}, 1.0),
        (0.6, {}, 0.7525),  # 1 - 0.99 * 0.1 / 0.4
        (0.7, {}, 0.505),
        (0.8, {}, 0.2575),
        (0.9, {}, 0.01),
        (1.0, {}, 0.01),
        (1.5, {}, 0.01),
        (0.3, {"hold": 0.2, "end": 0.4, "final_factor": 0.5}, 0.75),
        (0.5, {"hold": 0.5, "end": 0.5}, 1.0),  # hold == end: a single drop after hold
        (0.5001, {"hold": 0.5, "end": 0.5}, 0.01),
        (0.7, {"final_factor": 1.0}, 1.0),
        (0.0, {"hold": 0.0, "end": 1.0, "final_factor": 0.1}, 1.0),
        (0.5, {"hold": 0.0, "end": 1.0, "final_factor": 0.1}, 0.55),
    ],
)
def test_hold_decay_factor(progress, kwargs, expected):
    assert hold_decay_factor(progress, **kwargs) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"hold": -0.1}, r"Invalid hold: -0.1; expected a finite real number >= 0.0 and <= 1.0$"),
        ({"hold": 1.5}, r"Invalid hold: 1.5"),
        ({"hold": 0.6, "end": 0.5}, r"Invalid end: 0.5; expected a finite real number >= 0.6 and <= 1.0$"),
        ({"end": 1.1}, r"Invalid end: 1.1"),
        ({"final_factor": 0.0}, r"Invalid final_factor: 0.0; expected a finite real number > 0.0 and <= 1.0$"),
        ({"final_factor": 2.0}, r"Invalid final_factor: 2.0"),
        ({"interval": "batch"}, r"Invalid interval: 'batch'; expected one of \('epoch', 'step'\)"),
        ({"hold": True}, r"Invalid hold: True; expected a finite real number"),
        ({"final_factor": "0.1"}, r"Invalid final_factor: '0.1'; expected a finite real number"),
    ],
)
def test_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        HoldDecayLR(**kwargs)


# ----------------------------------------------------------------------------------------------------------------------
# the schedule in a fit


def test_epoch_schedule_removes_scheduler(tmp_path):
    schedule = HoldDecayLR()
    with pytest.warns(UserWarning, match=r"HoldDecayLR owns the learning rate: removed the LR scheduler StepLR"):
        _, trainer, trace = fit(
            tmp_path, [schedule], module=TinyModule(n=8, scheduler=True), max_epochs=10
        )  # one batch per epoch
    assert trainer.lr_scheduler_configs == []
    factors = [1, 1, 1, 1, 1, 1, 0.7525, 0.505, 0.2575, 0.01]  # epoch / 10 through hold 0.5, end 0.9
    assert [lr_of(trace, e) for e in range(10)] == pytest.approx([0.1 * f for f in factors], rel=1e-12)
    assert schedule.state_dict() == {"base_lrs": [[0.1]]}


class TwoGroupModule(TinyModule):
    """Plain SGD with two param groups at different learning rates."""

    def configure_optimizers(self):
        return torch.optim.SGD(
            [{"params": self.net.fc1.parameters()}, {"params": self.net.fc2.parameters(), "lr": 0.02}], lr=0.1
        )


def test_step_schedule_scales_each_group_from_its_base(tmp_path):
    # 4 batches per epoch x 2 epochs: 8 optimizer steps, progress = step / 8.
    _, _, trace = fit(tmp_path, [HoldDecayLR(interval="step")], module=TwoGroupModule(n=32), max_epochs=2)
    factors = [1, 1, 1, 1, 1, 0.690625, 0.38125, 0.071875]
    assert [trace[s][1][0] for s in range(8)] == pytest.approx([0.1 * f for f in factors], rel=1e-12)
    assert [trace[s][1][1] for s in range(8)] == pytest.approx([0.02 * f for f in factors], rel=1e-12)


@pytest.mark.parametrize(
    ("callbacks", "trainer_kwargs", "match"),
    [
        (
            [HoldDecayLR()],
            {"max_epochs": -1, "max_steps": 2},
            r"Invalid max_epochs: -1; HoldDecayLR\(interval='epoch'\) needs a finite Trainer\(max_epochs\)",
        ),
        (
            [HoldDecayLR(interval="step")],
            {"max_epochs": -1, "max_steps": -1, "max_time": {"seconds": 5}},
            r"Invalid training length: inf optimizer steps; HoldDecayLR\(interval='step'\) needs a finite",
        ),
        (
            [HoldDecayLR(), OneTimeLRDrop(epoch=1)],
            {"max_epochs": 2},
            r"HoldDecayLR sets the learning rate itself and cannot be combined with \['OneTimeLRDrop'\]",
        ),
    ],
)
def test_invalid_setup_fails_before_training(tmp_path, callbacks, trainer_kwargs, match):
    module = TinyModule(n=8)
    before = flat_params(module)
    with pytest.raises(ValueError, match=match):
        fit(tmp_path, callbacks, module=module, **trainer_kwargs)
    assert torch.equal(flat_params(module), before)


# ----------------------------------------------------------------------------------------------------------------------
# resume: the same lr at every epoch as an uninterrupted run, bit-exact weights


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted 6-epoch run (2 steps an epoch) under the paper's schedule, checkpointed at every epoch end
    and every 2 steps."""
    root = tmp_path_factory.mktemp("schedule_reference")
    module, _, trace = fit(root, [HoldDecayLR(), *checkpoints(root / "ckpt")], module=TinyModule(n=16), max_epochs=6)
    return root / "ckpt", flat_params(module), trace


@pytest.mark.parametrize(
    "ckpt",
    [
        "e1",  # before the decay starts (epoch 4 is the first decayed one)
        "s8",  # last batch of epoch 3: Lightning starts epoch 4 without on_train_epoch_start
        "e4",  # inside the decay
    ],
)
def test_resume_matches_uninterrupted_run(tmp_path, reference, ckpt):
    ckpt_dir, ref_params, ref_trace = reference
    assert len({lr_of(ref_trace, s) for s in ref_trace}) == 3  # 0.1 at epochs 0..3, then two decayed values
    # A module configured with another lr: the base lr must come from the checkpoint, not from configure_optimizers.
    module, _, trace = fit(
        tmp_path, [HoldDecayLR()], module=TinyModule(lr=0.5, n=16), ckpt_path=ckpt_dir / f"{ckpt}.ckpt", max_epochs=6
    )
    assert trace
    assert trace == {s: ref_trace[s] for s in trace}
    assert max(trace) == max(ref_trace)
    assert torch.equal(flat_params(module), ref_params)


def test_a_reused_instance_records_the_new_runs_learning_rates(tmp_path):
    schedule = HoldDecayLR()
    fit(tmp_path / "a", [schedule], max_epochs=2)
    assert schedule.base_lrs == [[0.1]]
    fit(tmp_path / "b", [schedule], module=TinyModule(lr=0.5, n=32), max_epochs=2)
    assert schedule.base_lrs == [[0.5]]
