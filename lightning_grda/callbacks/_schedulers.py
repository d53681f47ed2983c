"""Helpers shared by the callbacks that own the learning rate.

A callback that sets the learning rate itself (the one-time drop, the CIFAR hold-then-decay schedule, the optimizer
swap) cannot share it with an LR scheduler from ``configure_optimizers`` (or the CLI's ``lr_scheduler``): both would
write ``param_group["lr"]`` and the result would be neither schedule. The pack's decision: such a scheduler is
**removed with a loud warning**, not refused with an error, so that an existing project runs unedited when one of
these callbacks is added to its Trainer.
"""

from __future__ import annotations

import lightning.pytorch as pl
from lightning.pytorch.utilities import rank_zero_warn

__all__ = ["remove_lr_schedulers"]


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
