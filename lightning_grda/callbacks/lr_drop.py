"""A one-time learning-rate drop: the schedule of the gRDA paper's ImageNet run.

Paper: Shih-Kang Chao, Zhanyu Wang, Yue Xing, Guang Cheng. *Directional Pruning of Deep Neural Networks*.
NeurIPS 2020. arXiv:2006.09358. ResNet50 on ImageNet: lr 0.1, multiplied by 0.1 once at epoch 140.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_warn
from typing_extensions import override

from lightning_grda._console import say
from lightning_grda.callbacks.lr_owners import SCALES, check_lr_owners, remove_lr_schedulers
from lightning_grda.checks import check_int, check_real

__all__ = ["OneTimeLRDrop"]


class OneTimeLRDrop(Callback):
    """Multiply the learning rate of every param group of every optimizer by ``factor``, once.

    Give exactly one of ``epoch`` or ``step``:

    * ``epoch``: the drop happens at the start of the 0-based epoch ``epoch`` (``trainer.current_epoch``), so epochs
      ``0 .. epoch - 1`` run at the original learning rate. The paper's ImageNet schedule, lr 0.1 "dropped to 0.01 at
      epoch 140", is ``OneTimeLRDrop(epoch=140, factor=0.1)``: epochs 0..139 at 0.1, epoch 140 onwards at 0.01.
    * ``step``: the drop happens before optimizer step ``step`` (``trainer.global_step``, which counts optimizer steps,
      not batches, under gradient accumulation), so steps ``0 .. step - 1`` run at the original learning rate.

    The callback owns the learning rate: an LR scheduler configured alongside it (in ``configure_optimizers`` or
    the CLI's ``lr_scheduler``) is removed at fit start with a loud warning, see
    :func:`~lightning_grda.callbacks.lr_owners.remove_lr_schedulers`. Several drops at different epochs
    (a step schedule) are several instances of this callback. The optimizer is any ``torch.optim.Optimizer``; with
    :class:`~lightning_grda.optim.grda.GRDA` the soft threshold keeps accumulating with the new learning rate.

    Resuming: the dropped learning rate lives in the optimizer's state, which the checkpoint restores; the
    callback's own state (whether, and at which epoch and step, it dropped) is saved with it, so a run resumed
    from a checkpoint taken before, during or after the drop epoch ends with the learning rate dropped exactly once.
    A checkpoint without this callback's state (written without it, or with other ``epoch``/``step``/``factor``)
    past the drop point gets the drop at its first batch, with a warning.

    The drop is announced with one line, printed through the progress bar (see :mod:`lightning_grda._console`).
    To log the learning rate, add Lightning's ``LearningRateMonitor`` after this callback in the callbacks list, so
    that it sees the new value at the drop epoch's start.

    Args:
        epoch: the 0-based epoch at whose start the learning rate drops.
        step: the optimizer step (``trainer.global_step``) before which the learning rate drops.
        factor: the multiplier, ``0 < factor <= 1``.

    Raises:
        ValueError: if not exactly one of ``epoch`` and ``step`` is given, if it is negative, or if ``factor``
            is outside ``(0, 1]``.

    Example:
        >>> OneTimeLRDrop(epoch=140, factor=0.1).state_key
        "OneTimeLRDrop{'epoch': 140, 'step': None, 'factor': 0.1}"
    """

    lr_role = SCALES  #: see :mod:`lightning_grda.callbacks.lr_owners`

    def __init__(self, epoch: int | None = None, step: int | None = None, factor: float = 0.1) -> None:
        if (epoch is None) == (step is None):
            raise ValueError(f"Invalid epoch={epoch!r}, step={step!r}: give exactly one of `epoch` and `step`")
        if epoch is not None:
            check_int("epoch", epoch, low=0)
        if step is not None:
            check_int("step", step, low=0)
        check_real("factor", factor, low=0.0, high=1.0, low_open=True)
        self.epoch = epoch
        self.step = step
        self.factor = float(factor)
        self.dropped = False
        self.dropped_at_epoch: int | None = None
        self.dropped_at_step: int | None = None

    @property
    @override
    def state_key(self) -> str:
        return self._generate_state_key(epoch=self.epoch, step=self.step, factor=self.factor)

    def _where(self) -> str:
        return f"epoch {self.epoch}" if self.epoch is not None else f"step {self.step}"

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        # Every fit builds its optimizers afresh from `configure_optimizers`: nothing dropped yet. A resumed fit gets
        # its state back from the checkpoint after this (Lightning restores callbacks after `setup`).
        if stage == "fit":
            self.dropped, self.dropped_at_epoch, self.dropped_at_step = False, None, None

    @override
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        check_lr_owners(trainer)
        remove_lr_schedulers(trainer, owner=type(self).__name__)
        if self.dropped:  # state loaded before fit start: nothing left to check
            return
        if self.epoch is not None:
            max_epochs = trainer.max_epochs
            if max_epochs is not None and max_epochs != -1 and self.epoch >= max_epochs:
                rank_zero_warn(
                    f"OneTimeLRDrop(epoch={self.epoch}) will never drop the learning rate: "
                    f"training stops after max_epochs={max_epochs} (epochs are 0-based)."
                )
        else:
            total = trainer.estimated_stepping_batches
            if total != float("inf") and self.step >= total:
                rank_zero_warn(
                    f"OneTimeLRDrop(step={self.step}) will never drop the learning rate: training stops after "
                    f"{int(total)} optimizer steps (max_steps={trainer.max_steps}, max_epochs={trainer.max_epochs})."
                )

    @override
    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.epoch is not None:
            self._maybe_drop(trainer)

    @override
    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        # For `epoch`, this catches a resume from a checkpoint saved at an epoch's last batch: Lightning then starts
        # the next epoch without calling `on_train_epoch_start`.
        self._maybe_drop(trainer)

    def _maybe_drop(self, trainer: pl.Trainer) -> None:
        if self.dropped:
            return
        if self.epoch is not None:
            due, late = trainer.current_epoch >= self.epoch, trainer.current_epoch > self.epoch
        else:
            due, late = trainer.global_step >= self.step, trainer.global_step > self.step
        if not due:
            return
        if late:
            rank_zero_warn(
                f"OneTimeLRDrop was due at {self._where()} but training is at epoch {trainer.current_epoch}, "
                f"step {trainer.global_step} with no record of the drop (a checkpoint without this callback's "
                "state?): dropping the learning rate now."
            )
        before = [group["lr"] for optimizer in trainer.optimizers for group in optimizer.param_groups]
        for optimizer in trainer.optimizers:
            for group in optimizer.param_groups:
                group["lr"] = group["lr"] * self.factor
        after = [group["lr"] for optimizer in trainer.optimizers for group in optimizer.param_groups]
        self.dropped = True
        self.dropped_at_epoch = trainer.current_epoch
        self.dropped_at_step = trainer.global_step
        say(
            trainer,
            f"OneTimeLRDrop: learning rate x{self.factor} at epoch {trainer.current_epoch}, "
            f"step {trainer.global_step}: {_fmt(before)} -> {_fmt(after)}",
        )

    @override
    def state_dict(self) -> dict[str, Any]:
        return {
            "dropped": self.dropped,
            "dropped_at_epoch": self.dropped_at_epoch,
            "dropped_at_step": self.dropped_at_step,
        }

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.dropped = bool(state_dict.get("dropped", False))
        self.dropped_at_epoch = state_dict.get("dropped_at_epoch")
        self.dropped_at_step = state_dict.get("dropped_at_step")


def _fmt(lrs: list[float]) -> str:
    """The distinct learning rates in ``lrs``, in order, for the info line."""
    return ", ".join(f"{lr:g}" for lr in dict.fromkeys(lrs))
