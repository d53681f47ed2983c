"""The mask lifecycle every pruning callback of this pack shares, held by each of them as one small object.

:class:`PrunedLayers` resolves the ``layers`` argument to the model's layers at ``setup``, lists the tensors to mask
(each layer's weight, and with filter granularity its bias, so a removed channel's output is exactly zero), lets a
pruned checkpoint load into a fresh model, keeps masked entries zero after every optimizer step, undoes its hooks at
``teardown``, and counts and prints the per-layer table. The callbacks decide only *what* to mask and *when*.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import rank_zero_only
from torch import nn
from torch.utils.hooks import RemovableHandle

from lightning_grda._console import echo
from lightning_grda.layers import select_layers
from lightning_grda.pruning.masks import MaskKeeper, Target, is_pruned, register_structure_hooks
from lightning_grda.sparsity import PruningRow, pruning_report, pruning_table, report_rows

__all__ = ["PrunedLayers"]


class PrunedLayers:
    """The layers a pruning callback masks, and what it does with them in each fit.

    Args:
        layers: the callback's checked ``layers`` (see :data:`lightning_grda.layers.LayerSpec`).
        granularity: ``"weight"`` or ``"filter"``; with ``"filter"`` the layers' biases are targets too.

    Example:
        >>> net = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.ReLU(), torch.nn.Linear(3, 1, bias=False))
        >>> pruned = PrunedLayers(None, "filter")
        >>> pruned.setup(net)
        >>> [t.key for t in pruned.targets]
        ['0.weight', '0.bias', '2.weight']
        >>> pruned.teardown()
    """

    def __init__(self, layers: tuple[str | type, ...] | None, granularity: Literal["weight", "filter"]) -> None:
        self.spec = layers
        self.granularity = granularity
        self.layers: list[tuple[str, nn.Module]] = []
        self.targets: list[Target] = []
        self.keeper = MaskKeeper([])
        self._hooks: list[RemovableHandle] = []

    def setup(self, module: nn.Module) -> None:
        """Resolve the layers in ``module``, list the targets and register the load hooks (before a checkpoint loads).

        Raises:
            ValueError: for a ``layers`` entry that matches no layer of ``module``.
        """
        self.teardown()
        self.layers = select_layers(module, self.spec)
        self.targets = []
        for name, layer in self.layers:
            self.targets.append(Target(f"{name}.weight", layer, "weight"))
            has_bias = isinstance(getattr(layer, "bias", None), nn.Parameter) or is_pruned(layer, "bias")
            if self.granularity == "filter" and has_bias:
                self.targets.append(Target(f"{name}.bias", layer, "bias"))
        self.keeper = MaskKeeper(self.targets)
        self._hooks = register_structure_hooks(self.targets)

    def attach(self, optimizers: Sequence[torch.optim.Optimizer]) -> None:
        """Keep the masked entries zero after every step of ``optimizers`` (see :class:`MaskKeeper`)."""
        self.keeper.attach(optimizers)

    def all_pruned(self) -> bool:
        """Whether every target is masked."""
        return all(is_pruned(t.module, t.name) for t in self.targets)

    def teardown(self) -> None:
        """Detach the step hooks and remove the load hooks."""
        self.keeper.detach()
        for handle in self._hooks:
            handle.remove()
        self._hooks = []

    def report(self, module: nn.Module | None = None, owner: str = "The callback") -> list[PruningRow]:
        """Per layer: the filters removed and the zero weights (see :func:`~lightning_grda.sparsity.pruning_report`).

        Args:
            module: the model; default: the one of the last ``setup`` (its layers as resolved then).
            owner: the callback's name, for the error.

        Raises:
            RuntimeError: without ``module`` before any ``setup``.
        """
        if module is not None:
            return pruning_report(module, self.spec)
        if not self.layers:
            raise RuntimeError(f"{owner}.report() needs a module before the callback's setup: pass `module`")
        return report_rows(self.layers)

    @rank_zero_only
    def print_table(self, title: str, trainer: pl.Trainer | None = None) -> None:
        """Print the per-layer table of the last ``setup``'s model (rank zero), through ``trainer``'s progress bar."""
        echo(trainer, pruning_table(self.report(), title=title))
