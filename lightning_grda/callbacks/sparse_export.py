"""SparseExport: write the compact sparse weight file at the end of a fit, so ``lightning-grda fit`` ships it."""

from __future__ import annotations

import os
from pathlib import Path

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from typing_extensions import override

from lightning_grda._console import say

__all__ = ["SparseExport"]


class SparseExport(Callback):
    """At the end of a fit, write the model's weights with :func:`lightning_grda.export.save_sparse`.

    The file holds the LightningModule's ``state_dict`` with pruning masks baked in (``weight_orig * weight_mask``
    becomes ``weight``): it loads into the same LightningModule (``load_sparse(path, model)``, or ``lightning-grda
    test --init_from PATH``) and holds no optimizer state, no pickle. It is the same file ``lightning-grda export``
    writes from the last checkpoint; this callback saves the second command. The default config lists it.

    Written on global rank zero only (the weights are the same on every rank), after an interrupted fit too (the
    weights it has are what a user would keep), and not after ``validate``/``test``/``predict``.

    Args:
        path: the output file. Default ``None``: ``model.safetensors`` in the trainer's log folder (``log_dir``,
            else ``default_root_dir``). A relative path is relative to the working directory.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        if path is not None and not isinstance(path, (str, os.PathLike)):
            from lightning_grda.checks import invalid

            raise invalid("path", path, "a file path (str) or None")
        self.path = None if path is None else Path(path)
        self.last_path: Path | None = None

    def output_path(self, trainer: pl.Trainer) -> Path:
        """Where the file goes for ``trainer``."""
        if self.path is not None:
            return self.path
        return Path(trainer.log_dir or trainer.default_root_dir) / "model.safetensors"

    @override
    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Write the file (global rank zero) and say where it went."""
        if trainer.global_rank != 0:
            return
        from lightning_grda.export import bake_masks, save_sparse

        path = self.output_path(trainer)
        path.parent.mkdir(parents=True, exist_ok=True)
        report = save_sparse(bake_masks(pl_module.state_dict()), path)
        self.last_path = path
        say(trainer, f"SparseExport: {report.summary()}")
