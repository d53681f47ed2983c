"""Sparsity Monitor: log the fraction of exact zeros in the model and gRDA's current threshold while training."""

from __future__ import annotations

from typing import Any, Literal

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_warn
from typing_extensions import override

from lightning_grda._console import echo
from lightning_grda._fsdp1 import refuse_fsdp1
from lightning_grda.checks import check_bool, check_choice, check_int
from lightning_grda.optim.grda import GRDA
from lightning_grda.sparsity import SparsityReport, sparsity_report

__all__ = ["SparsityMonitor"]

TABLE_NOTE = (
    "Every parameter counts, as in the paper: biases start at 0, inside gRDA's threshold, and may end 100 % zero; "
    "normalisation weights start at 1 and stay dense. exempt_norm_and_bias=True keeps both dense."
)
"""The note printed under the end-of-fit table when the model has one-dimensional parameters."""


class SparsityMonitor(Callback):
    r"""Log the model's sparsity (fraction of exact zeros) and gRDA's soft threshold, and print a table at the end.

    Sparsity is counted as in the gRDA paper: exact zeros over **all** parameters, biases and normalisation
    parameters included; pruned weights (:mod:`torch.nn.utils.prune`) as ``weight_orig * weight_mask``; see
    :mod:`lightning_grda.sparsity`. Each logging event counts all parameters with one host sync.

    **Logged Metrics**

    - ``sparsity``: the global fraction of exact zeros over all parameters.
    - ``sparsity/<parameter name>``: the fraction of exact zeros in each parameter, e.g. ``sparsity/net.fc1.weight``
      (only with ``per_layer=True``).
    - ``grda/threshold``: the soft threshold :math:`T_n` of parameter group 0 of the first
      :class:`~lightning_grda.optim.grda.GRDA` optimizer, and ``grda/threshold/group_<i>`` for its groups
      ``i >= 1``. Not logged when no optimizer is a ``GRDA``.

    The keys are logged with ``LightningModule.log``, so they reach the loggers and ``trainer.callback_metrics``:
    ``ModelCheckpoint(monitor="sparsity")`` and ``EarlyStopping(monitor="sparsity")`` work. To keep the monitored value
    current, ``sparsity`` is also refreshed in ``trainer.callback_metrics`` (not in the loggers) at the end of every
    validation run and training epoch during fitting. ``trainer.test`` and ``trainer.validate`` log ``sparsity``
    once at their end, next to the accuracy of the weights they evaluate.

    Under DDP the parameters are identical on every rank, so every rank logs the same values; step-level values are
    not reduced, epoch-level values are reduced with ``max`` (exact for identical values, and it keeps Lightning from
    warning about ``sync_dist``). Under FSDP2 (``fully_shard``, e.g. in Lightning's ``ModelParallelStrategy``) each
    rank counts its shards and the counts are summed across ranks (see :mod:`lightning_grda.sparsity`), so again
    every rank logs the exact global values. Lightning's FSDP1 ``FSDPStrategy`` is refused at setup: its 1-D
    parameter pieces would give per-rank counts.

    A layer whose weight (a parameter of two or more dimensions) becomes all zeros has collapsed: its output no
    longer depends on its input. The monitor warns once per fit for each such layer, naming it (``c`` is too large
    for the model's weight scale). The end-of-fit table is printed through the progress bar (see
    :mod:`lightning_grda._console`), so the bar's last redraw does not erase it, with a note on why biases may be
    100 % zero while normalisation weights stay dense.

    No state is saved in checkpoints: everything is derived from the model and the optimizer.

    Args:
        logging_interval: ``"epoch"`` logs at the end of every training epoch; ``"step"`` logs every
            ``log_every_n_steps`` optimizer steps (``trainer.global_step``).
        log_every_n_steps: With ``logging_interval="step"``, how often to count. ``None`` uses the Trainer's
            ``log_every_n_steps``, which is also when Lightning writes step metrics to the loggers. Other values
            decide when sparsity is counted, but loggers still receive step metrics on the Trainer's schedule, with
            the most recently counted value.
        per_layer: Also log each parameter's sparsity.
        print_table: At the end of fitting, print a table of every parameter's shape, nonzeros and sparsity, with
            totals (global rank zero only).

    Example::

        from lightning.pytorch import Trainer
        from lightning.pytorch.callbacks import ModelCheckpoint

        trainer = Trainer(callbacks=[SparsityMonitor(), ModelCheckpoint(monitor="sparsity", mode="max")])
    """

    def __init__(
        self,
        logging_interval: Literal["step", "epoch"] = "epoch",
        log_every_n_steps: int | None = None,
        per_layer: bool = True,
        print_table: bool = True,
    ) -> None:
        check_choice("logging_interval", logging_interval, ("step", "epoch"))
        if log_every_n_steps is not None:
            check_int("log_every_n_steps", log_every_n_steps, low=1)
        check_bool("per_layer", per_layer)
        check_bool("print_table", print_table)
        self.logging_interval = logging_interval
        self.log_every_n_steps = log_every_n_steps
        self.per_layer = per_layer
        self.print_table = print_table
        self._last_logged_step = -1
        self._collapsed: set[str] = set()

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        refuse_fsdp1(trainer, "SparsityMonitor", "each rank would count its own pieces, not the model")
        if stage == "fit":
            self._collapsed = set()
        n, every = self.log_every_n_steps, trainer.log_every_n_steps
        if self.logging_interval == "step" and n is not None and (every == 0 or n % every):
            rank_zero_warn(
                f"SparsityMonitor(log_every_n_steps={n}) is not a multiple of Trainer(log_every_n_steps={every}):"
                " loggers receive step metrics only on the Trainer's schedule, so some counts will not be written."
            )

    @override
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._last_logged_step = -1

    @override
    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self.logging_interval != "step":
            return
        n = trainer.log_every_n_steps if self.log_every_n_steps is None else self.log_every_n_steps
        step = trainer.global_step
        # Only batches after which the optimizer stepped onto a multiple of n (not accumulation batches).
        if n < 1 or step == 0 or step % n or step == self._last_logged_step:
            return
        self._last_logged_step = step
        report = sparsity_report(pl_module)
        self._warn_collapsed(report)
        self._log(trainer, pl_module, report, on_step=True)

    @override
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        report = sparsity_report(pl_module)
        self._warn_collapsed(report)
        if self.logging_interval == "epoch":
            self._log(trainer, pl_module, report, on_step=False)
        else:
            self._refresh_monitored(pl_module, report)

    @override
    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking:
            self._refresh_monitored(pl_module, sparsity_report(pl_module))
        elif trainer.state.fn == TrainerFn.VALIDATING:
            self._log_evaluated(pl_module)

    @override
    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._log_evaluated(pl_module)

    @staticmethod
    def _log_evaluated(pl_module: pl.LightningModule) -> None:
        # `trainer.test`/`trainer.validate` start with fresh metrics: report the sparsity of the evaluated weights
        # next to their accuracy (in the results table, the loggers and `trainer.callback_metrics`).
        pl_module.log("sparsity", sparsity_report(pl_module).sparsity, sync_dist=True, reduce_fx="max")

    @override
    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.print_table:
            # Counted on every rank (sharded parameters make counting a collective), printed on rank zero.
            report = sparsity_report(pl_module)
            if trainer.is_global_zero:
                table = report.to_table(title="Sparsity at the end of fit")
                grda = any(isinstance(opt, GRDA) for opt in trainer.optimizers)
                if grda and any(len(row.shape) < 2 for row in report.rows):
                    table.caption, table.caption_justify = TABLE_NOTE, "left"
                echo(trainer, table)

    def _warn_collapsed(self, report: SparsityReport) -> None:
        """Warn once per fit for each layer whose weight (a parameter of 2 or more dimensions) is all zeros."""
        for row in report.rows:
            if len(row.shape) >= 2 and row.numel and row.zeros == row.numel and row.name not in self._collapsed:
                self._collapsed.add(row.name)
                rank_zero_warn(
                    f"SparsityMonitor: layer {row.name} ({'x'.join(map(str, row.shape))}) is 100 % zero: it has "
                    "collapsed, and its output no longer depends on its input. gRDA's c is too large for this "
                    "model's weight scale: lower c (see README, 'Choosing c')."
                )

    def _log(self, trainer: pl.Trainer, pl_module: pl.LightningModule, report: SparsityReport, on_step: bool) -> None:
        metrics = {"sparsity": report.sparsity}
        if self.per_layer:
            metrics.update({f"sparsity/{row.name}": row.sparsity for row in report.rows})
        grda = next((opt for opt in trainer.optimizers if isinstance(opt, GRDA)), None)
        if grda is not None:
            for i, threshold in enumerate(grda.group_thresholds()):
                metrics["grda/threshold" if i == 0 else f"grda/threshold/group_{i}"] = threshold
        # Identical on every rank: a step-level value needs no reduction; epoch-level values are reduced with `max`,
        # which is exact for identical values (a `mean` might not be) and keeps Lightning from warning about sync_dist.
        pl_module.log_dict(metrics, on_step=on_step, on_epoch=not on_step, sync_dist=not on_step, reduce_fx="max")

    @staticmethod
    def _refresh_monitored(pl_module: pl.LightningModule, report: SparsityReport) -> None:
        # For ModelCheckpoint/EarlyStopping: the current value in trainer.callback_metrics, no extra logger rows.
        pl_module.log(
            "sparsity", report.sparsity, on_step=False, on_epoch=True, logger=False, sync_dist=True, reduce_fx="max"
        )
