"""Who owns the learning rate: the one decision, shared by every callback of the pack that sets or replaces it.

Three callbacks own the learning rate, each declaring its role as the class attribute ``lr_role`` (so this module
knows no callback class, and the callbacks know only this module):

* :data:`REPLACES` (``GRDASwap``): builds new optimizers at fit start, copying the configured learning rates;
* :data:`SCHEDULES` (``HoldDecayLR``): sets ``lr = base * f(progress)`` from the rates it records at fit start;
* :data:`SCALES` (``OneTimeLRDrop``): multiplies the current rate, once.

The rules, checked by :func:`check_lr_owners` at each owner's fit start:

1. A schedule is the only writer: a :data:`SCHEDULES` owner cannot be combined with another :data:`SCHEDULES` or
   :data:`SCALES` owner (both would write ``param_group["lr"]`` and the result would be neither schedule). Several
   :data:`SCALES` owners (drops at different epochs) compose.
2. A :data:`REPLACES` owner comes before every :data:`SCHEDULES` owner in the callbacks list, or the schedule would
   record the replaced optimizer's learning rates.
3. An LR scheduler from ``configure_optimizers`` (or the CLI's ``lr_scheduler``) is **removed with a loud warning**
   by :func:`remove_lr_schedulers`, not refused with an error, so that an existing project runs unedited when one
   of these callbacks is added to its Trainer.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.utilities import rank_zero_warn

__all__ = ["REPLACES", "SCALES", "SCHEDULES", "check_lr_owners", "remove_lr_schedulers"]

#: ``lr_role`` of a callback that replaces the optimizers at fit start, keeping their learning rates.
REPLACES = "replaces"
#: ``lr_role`` of a callback that sets the learning rate from the rates it records at fit start.
SCHEDULES = "schedules"
#: ``lr_role`` of a callback that multiplies the current learning rate.
SCALES = "scales"


def _owners(trainer: pl.Trainer, role: str) -> list[Any]:
    return [cb for cb in trainer.callbacks if getattr(cb, "lr_role", None) == role]


def check_lr_owners(trainer: pl.Trainer) -> None:
    """Raise ``ValueError`` unless the callbacks that own the learning rate on ``trainer`` follow the rules above.

    Call it from each owner's ``on_fit_start``, before it touches a learning rate.
    """
    schedules = _owners(trainer, SCHEDULES)
    for schedule in schedules:
        others = [type(cb).__name__ for cb in schedules + _owners(trainer, SCALES) if cb is not schedule]
        if others:
            raise ValueError(
                f"Invalid callbacks: {type(schedule).__name__} sets the learning rate itself and cannot be combined "
                f"with {others}"
            )
    for replacer in _owners(trainer, REPLACES):
        position = trainer.callbacks.index(replacer)
        early = [type(cb).__name__ for cb in schedules if trainer.callbacks.index(cb) < position]
        if early:
            raise ValueError(
                f"Invalid callbacks order: {early} listed before {type(replacer).__name__} would record the replaced "
                f"optimizer's learning rates at fit start; list {type(replacer).__name__} first"
            )


def remove_lr_schedulers(trainer: pl.Trainer, owner: str, *, restore_initial_lr: bool = True) -> None:
    """Remove every LR scheduler configured on ``trainer``, with one loud warning per scheduler.

    Call it from a callback that owns the learning rate, once the optimizers exist (``on_fit_start`` or later).
    The schedulers are taken out of ``trainer.strategy.lr_scheduler_configs``, so Lightning neither steps them nor
    saves them in checkpoints. A checkpoint that still holds scheduler states (one written before the callback was
    added) resumes fine: Lightning restores scheduler states only for schedulers that are configured.

    A torch scheduler may already have changed the learning rate when it was built (``LinearLR`` warm-up,
    ``LambdaLR`` with ``lambda(0) != 1``). With ``restore_initial_lr`` (the default) each param group of a removed
    scheduler's optimizer gets back the ``initial_lr`` that the scheduler recorded, that is the learning rate the
    optimizer was configured with; the warning says so when a value changes.

    Args:
        trainer: the trainer whose schedulers are removed; nothing happens when it has none.
        owner: the name of the callback that owns the learning rate, quoted in the warning.
        restore_initial_lr: reset each affected param group's ``lr`` to its ``initial_lr`` where torch recorded one.
    """
    configs = trainer.strategy.lr_scheduler_configs
    for config in configs:
        scheduler = config.scheduler
        message = (
            f"{owner} owns the learning rate: removed the LR scheduler {type(scheduler).__name__} "
            f"(interval={config.interval!r}) that `configure_optimizers` (or the CLI's `lr_scheduler`) configured; "
            "it will not step. Remove it from your configuration to silence this warning."
        )
        optimizer = getattr(scheduler, "optimizer", None)
        if restore_initial_lr and optimizer is not None:
            restored = []
            for group in optimizer.param_groups:
                initial = group.get("initial_lr")
                if initial is not None and group["lr"] != initial:
                    restored.append(f"{group['lr']!r} -> {initial!r}")
                    group["lr"] = initial
            if restored:
                message += (
                    f" The lr it had already set was reset to the configured `initial_lr` ({', '.join(restored)})."
                )
        rank_zero_warn(message)
    # In place: every holder of the list (the trainer, the loops) sees it empty.
    configs.clear()
