"""Hold, then decay linearly, then hold: the learning-rate schedule of the gRDA paper's CIFAR runs.

Paper: Shih-Kang Chao, Zhanyu Wang, Yue Xing, Guang Cheng. *Directional Pruning of Deep Neural Networks*.
NeurIPS 2020. arXiv:2006.09358. VGG16 / CIFAR-10 and WRN-28-10 / CIFAR-100: the base learning rate for the first
50 % of training, then linearly down to 0.01x the base by 90 %, then constant.

Why a callback rather than a ``LambdaLR`` for the CLI's ``lr_scheduler``: the schedule is a function of the
fraction of training done, and the callback reads the training length from the trainer (``max_epochs`` or
``estimated_stepping_batches``), so a YAML user lists it under ``trainer.callbacks`` and never repeats the epoch
count; a ``LambdaLR`` needs a callable (which YAML cannot write) and the length spelled out a second time. The
factor itself is the pure function :func:`hold_decay_factor`, for those who prefer ``LambdaLR`` in Python.
"""

from __future__ import annotations

from typing import Any, Literal

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from typing_extensions import override

from lightning_grda.callbacks.lr_owners import SCHEDULES, check_lr_owners, remove_lr_schedulers
from lightning_grda.checks import check_choice, check_real

__all__ = ["HoldDecayLR", "hold_decay_factor"]

_INTERVALS = ("epoch", "step")


def hold_decay_factor(progress: float, hold: float = 0.5, end: float = 0.9, final_factor: float = 0.01) -> float:
    """The learning-rate multiplier at ``progress``, the fraction of training done.

    ``1`` while ``progress <= hold``, then linear down to ``final_factor`` at ``progress = end``, then
    ``final_factor``. With ``hold == end`` it is a single drop to ``final_factor`` after ``hold``.

    Args:
        progress: the fraction of training done, ``current_epoch / max_epochs`` or
            ``global_step / estimated_stepping_batches``; values outside ``[0, 1]`` are clamped by the flat parts.
        hold: where the decay starts.
        end: where the decay ends.
        final_factor: the multiplier from ``end`` on.

    Returns:
        The multiplier of the base learning rate.

    Example:
        >>> [round(hold_decay_factor(p), 4) for p in (0.0, 0.5, 0.7, 0.9, 1.0)]
        [1.0, 1.0, 0.505, 0.01, 0.01]
        >>> hold_decay_factor(0.5, hold=0.5, end=0.5), hold_decay_factor(0.51, hold=0.5, end=0.5)
        (1.0, 0.01)
    """
    if progress <= hold:
        return 1.0
    if progress >= end:
        return final_factor
    return 1.0 + (final_factor - 1.0) * (progress - hold) / (end - hold)


class HoldDecayLR(Callback):
    """Set every param group's learning rate to ``base_lr * hold_decay_factor(progress)``: the paper's CIFAR schedule.

    ``base_lr`` is each param group's learning rate at the first fit start (the optimizer's configured value),
    recorded once and saved in the checkpoint. ``progress`` comes from the trainer:

    * ``interval="epoch"``: ``current_epoch / max_epochs``, applied at each epoch start; needs a finite
      ``Trainer(max_epochs)``. With 200 epochs: epochs 0..100 at the base lr, linear to 0.01x at epoch 180, then flat.
    * ``interval="step"``: ``global_step / estimated_stepping_batches``, applied before each optimizer step; needs
      a finite training length (``max_steps``, or ``max_epochs`` and a sized train dataloader).

    The defaults are the paper's: hold 50 %, linear to 0.01x the base by 90 %. The callback owns the learning rate:
    an LR scheduler configured alongside it is removed at fit start with a loud warning (see
    :func:`~lightning_grda.callbacks.lr_owners.remove_lr_schedulers`), and combining it with
    :class:`~lightning_grda.callbacks.lr_drop.OneTimeLRDrop` or a second ``HoldDecayLR`` is an error. Because the
    learning rate is a function of the base and the trainer's counters only, a resumed run gets the same learning rate
    at every epoch (and step) as an uninterrupted one; resuming with another ``max_epochs`` reshapes what is left of
    the schedule. Add Lightning's ``LearningRateMonitor`` after this callback to log the learning rate.

    Args:
        hold: fraction of training at the base learning rate, ``0 <= hold <= end``.
        end: fraction of training where the decay reaches ``final_factor``, ``hold <= end <= 1``.
        final_factor: the final multiplier of the base learning rate, ``0 < final_factor <= 1``.
        interval: ``"epoch"`` or ``"step"``: how often the learning rate changes, and what progress counts.

    Raises:
        ValueError: on arguments outside the ranges above, and at fit start when the training length is not finite
            or another learning-rate callback of this pack is present.

    Example:
        >>> HoldDecayLR().state_key
        "HoldDecayLR{'hold': 0.5, 'end': 0.9, 'final_factor': 0.01, 'interval': 'epoch'}"
    """

    lr_role = SCHEDULES  #: see :mod:`lightning_grda.callbacks.lr_owners`

    def __init__(
        self,
        hold: float = 0.5,
        end: float = 0.9,
        final_factor: float = 0.01,
        interval: Literal["epoch", "step"] = "epoch",
    ) -> None:
        check_real("hold", hold, low=0.0, high=1.0)
        check_real("end", end, low=float(hold), high=1.0)  # 0 <= hold <= end <= 1
        check_real("final_factor", final_factor, low=0.0, high=1.0, low_open=True)
        check_choice("interval", interval, _INTERVALS)
        self.hold = float(hold)
        self.end = float(end)
        self.final_factor = float(final_factor)
        self.interval = interval
        self.base_lrs: list[list[float]] | None = None
        self._total: float | None = None

    @property
    @override
    def state_key(self) -> str:
        return self._generate_state_key(
            hold=self.hold, end=self.end, final_factor=self.final_factor, interval=self.interval
        )

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        # A new fit records the learning rates its own optimizers start from; a resumed fit gets the recorded ones
        # back from the checkpoint after this (Lightning restores callbacks after `setup`).
        if stage == "fit":
            self.base_lrs = None

    @override
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        check_lr_owners(trainer)
        if self.interval == "epoch":
            total = trainer.max_epochs
            if total is None or total < 1:
                raise ValueError(
                    f"Invalid max_epochs: {total!r}; HoldDecayLR(interval='epoch') needs a finite Trainer(max_epochs)"
                )
        else:
            total = trainer.estimated_stepping_batches
            if total == float("inf") or total < 1:
                raise ValueError(
                    f"Invalid training length: {total!r} optimizer steps; HoldDecayLR(interval='step') needs a finite "
                    "Trainer(max_steps), or max_epochs and a train dataloader with a length"
                )
        self._total = float(total)
        remove_lr_schedulers(trainer, owner=type(self).__name__)
        # Recorded once. When the checkpoint's state was loaded before fit start (the usual order) it is kept; when
        # the strategy loads it after fit start (FSDP, DeepSpeed), `load_state_dict` overwrites this value.
        if self.base_lrs is None:
            self.base_lrs = [[group["lr"] for group in opt.param_groups] for opt in trainer.optimizers]

    @override
    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.interval == "epoch":
            self._apply(trainer, trainer.current_epoch)

    @override
    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        # For "epoch" this repeats the epoch-start value (cheap); it matters on resume from a checkpoint saved at an
        # epoch's last batch, where Lightning starts the next epoch without calling `on_train_epoch_start`.
        self._apply(trainer, trainer.current_epoch if self.interval == "epoch" else trainer.global_step)

    def _apply(self, trainer: pl.Trainer, count: int) -> None:
        assert self.base_lrs is not None, "set in on_fit_start"
        assert self._total is not None, "set in on_fit_start"
        shape = [len(opt.param_groups) for opt in trainer.optimizers]
        if shape != [len(groups) for groups in self.base_lrs]:
            raise RuntimeError(
                f"HoldDecayLR recorded base learning rates for param groups {[len(g) for g in self.base_lrs]} "
                f"(per optimizer) but the trainer's optimizers now have {shape}"
            )
        factor = hold_decay_factor(count / self._total, self.hold, self.end, self.final_factor)
        for optimizer, bases in zip(trainer.optimizers, self.base_lrs, strict=True):
            for group, base in zip(optimizer.param_groups, bases, strict=True):
                group["lr"] = base * factor

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"base_lrs": self.base_lrs}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        base_lrs = state_dict.get("base_lrs")
        self.base_lrs = None if base_lrs is None else [[float(lr) for lr in groups] for groups in base_lrs]
