"""What the ``lightning-grda`` command tells its user beyond Lightning's own output, and the noise it removes.

* :func:`written`: at the end of a fit, where the logs, the config and the checkpoints went.
* :func:`optimizer_line`: which optimizer runs when the config's ``optimizer`` replaces the model's GRDA (Lightning
  only warns that ``configure_optimizers`` "will be overridden").
* :func:`quiet_lightning`: Lightning's litlogger/litmodels tips (advertising, through its ``rank_zero`` loggers)
  and that override warning are filtered out; :func:`hide_version_on_bar` drops ``v_num`` from the progress bar
  (the version is in the logs path the fit prints at its end).
"""

from __future__ import annotations

import importlib
import inspect
import logging
import os
import warnings
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.callbacks.progress.progress_bar import ProgressBar
from lightning.pytorch.cli import SaveConfigCallback
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from rich.table import Table

__all__: list[str] = []

_TIP = "💡 Tip:"


class _NoTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(_TIP)


def quiet_lightning() -> None:
    """Filter Lightning's product tips and its optimizer-override warning (replaced by :func:`optimizer_line`)."""
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _NoTips) for f in logger.filters):
            logger.addFilter(_NoTips())
    warnings.filterwarnings("ignore", message=r"`\w+\.configure_optimizers` will be overridden by")


def drop_checkpoints_when_disabled(trainer_config: Any) -> None:
    """With ``trainer.enable_checkpointing`` false, remove the config's ``ModelCheckpoint`` callbacks.

    The shipped configs list a ``ModelCheckpoint`` (to keep ``last.ckpt``); Lightning refuses that list with
    ``enable_checkpointing=False``, which a user means as "no checkpoints": so the command drops them.
    """
    if trainer_config is None or trainer_config.get("enable_checkpointing", True) is not False:
        return
    callbacks = trainer_config.get("callbacks")
    if isinstance(callbacks, list):
        trainer_config["callbacks"] = [
            cb for cb in callbacks if not str(_get(cb, "class_path", "")).endswith(".ModelCheckpoint")
        ]


def _get(item: Any, key: str, default: Any = None) -> Any:
    return item.get(key, default) if hasattr(item, "get") else getattr(item, key, default)


def hide_version_on_bar(trainer: pl.Trainer) -> None:
    """Drop ``v_num`` (the logger's version) from the progress bar's metrics."""
    bar = trainer.progress_bar_callback
    if not isinstance(bar, ProgressBar) or getattr(bar, "_grda_hides_v_num", False):
        return
    get_metrics = bar.get_metrics

    def without_version(trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        items = get_metrics(trainer, pl_module)
        items.pop("v_num", None)
        return items

    bar.get_metrics = without_version  # type: ignore[method-assign]
    bar._grda_hides_v_num = True  # type: ignore[attr-defined]


def summary_input(model: pl.LightningModule, datamodule: Any, trainer: pl.Trainer) -> None:
    """Give the model summary one zero sample of the datamodule's ``input_shape``, so its FLOPs column counts.

    Without an ``example_input_array`` Lightning's summary shows a FLOPs column of zeros. Only for the pack's
    ``ImageClassifier`` (whose forward takes the batch's images) in a single-process run: the summary's forward runs
    on rank zero alone, which a model sharded over ranks cannot do, so there the column keeps Lightning's default.
    """
    from lightning_grda.models import ImageClassifier

    shape = getattr(datamodule, "input_shape", None)
    if not isinstance(model, ImageClassifier) or shape is None or trainer.world_size != 1:
        return
    if model.example_input_array is None:
        model.example_input_array = torch.zeros(1, *shape)


def optimizer_line(model: pl.LightningModule, optimizer: Any) -> str:
    """The line saying that the config's ``optimizer`` (a class path and init args) runs instead of the model's."""
    if hasattr(optimizer, "get"):  # a dict or jsonargparse Namespace: class_path and init_args
        name = str(optimizer.get("class_path", "?"))
        args = optimizer.get("init_args") or {}
        args = args.as_dict() if hasattr(args, "as_dict") else dict(args)
    else:
        name, args = type(optimizer).__name__, {}
    shown = ", ".join(f"{k}={v}" for k, v in args.items() if _defaults(name).get(k, inspect.Parameter.empty) != v)
    return (
        f"Optimizer: {name}({shown}), the config's `optimizer`, replaces {type(model).__name__}'s own "
        "(its lr, c and mu are not used)."
    )


def _defaults(class_path: str) -> dict[str, Any]:
    """The keyword defaults of the class at ``class_path`` (empty if it cannot be imported)."""
    module, _, name = class_path.rpartition(".")
    try:
        signature = inspect.signature(getattr(importlib.import_module(module), name))
    except (ImportError, AttributeError, TypeError, ValueError):
        return {}
    return {p.name: p.default for p in signature.parameters.values()}


def _config_path(trainer: pl.Trainer) -> str | None:
    for callback in trainer.callbacks:  # type: ignore[attr-defined]
        if isinstance(callback, SaveConfigCallback) and trainer.log_dir is not None:
            path = os.path.join(trainer.log_dir, callback.config_filename)
            return path if os.path.isfile(path) else None
    return None


def written(trainer: pl.Trainer) -> Table | None:
    """A two-column table of what the fit wrote: logs, config, checkpoints (best and last); None if nothing."""
    rows: list[tuple[str, str]] = []
    for logger in trainer.loggers:
        where = logger.log_dir if isinstance(logger, (CSVLogger, TensorBoardLogger)) else logger.save_dir
        if where:
            rows.append((f"logs ({type(logger).__name__})", os.path.relpath(where)))
    config = _config_path(trainer)
    if config:
        rows.append(("config", os.path.relpath(config)))
    for callback in trainer.checkpoint_callbacks:
        if not isinstance(callback, ModelCheckpoint):
            continue
        last = callback.last_model_path
        best = callback.best_model_path
        if best and os.path.isfile(best):
            rows.append(("checkpoint (best)" if callback.monitor else "checkpoint", os.path.relpath(best)))
        if last and os.path.isfile(last) and last != best:
            rows.append(("checkpoint (last)", os.path.relpath(last)))
    if not rows:
        return None
    table = Table(title="Written", title_justify="left", show_header=False, box=None, padding=(0, 2, 0, 0))
    table.add_column(style="bold")
    table.add_column()
    for what, path in rows:
        table.add_row(what, path)
    return table
