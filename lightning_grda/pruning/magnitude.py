"""One-shot magnitude (L1) pruning: the baseline GReg is compared with, built on Lightning's ``ModelPruning``.

Magnitude pruning: Song Han, Jeff Pool, John Tran, William J. Dally. *Learning both Weights and Connections for
Efficient Neural Networks*. NeurIPS 2015 (unstructured); Hao Li, Asim Kadav, Igor Durdanovic, Hanan Samet, Hans Peter
Graf. *Pruning Filters for Efficient ConvNets*. ICLR 2017 (filters by L1 norm). GReg (Wang et al., ICLR 2021,
arXiv:2012.09243) reports against the one-shot L1 baseline with the same per-layer ratios.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any, Literal

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ModelPruning
from lightning.pytorch.utilities import rank_zero_info, rank_zero_only, rank_zero_warn
from torch import nn
from typing_extensions import override

from lightning_grda._console import echo
from lightning_grda.checks import check_int, check_real
from lightning_grda.layers import LayerSpec, check_layers, layer_names, select_layers
from lightning_grda.pruning.masks import (
    MaskKeeper,
    Target,
    apply_mask,
    is_pruned,
    make_pruning_permanent,
    register_structure_hooks,
    same_parameter_order,
)
from lightning_grda.sparsity import PruningRow, pruning_report, pruning_table, report_rows

__all__ = ["OneShotMagnitudePruning"]


class OneShotMagnitudePruning(ModelPruning):
    """Prune each layer once by magnitude at the end of an epoch, then fine-tune (or stop): the L1 baseline.

    A thin subclass of Lightning's :class:`~lightning.pytorch.callbacks.ModelPruning`, which does the pruning with
    :mod:`torch.nn.utils.prune` (``l1_unstructured`` per layer for ``granularity="weight"``; ``ln_structured`` with
    ``n=1, dim=0``, i.e. output channels by L1 norm, for ``"filter"``), configured to prune exactly once:

    * ``fine_tune=True``: at the end of the 0-based epoch ``epoch``; epochs ``epoch + 1 ..`` fine-tune the pruned
      model with the masks held.
    * ``fine_tune=False``: at the end of the last epoch (``max_epochs - 1``), so no training happens after it. That
      epoch's validation runs before the pruning (Lightning validates before ``on_train_epoch_end``): evaluate the
      pruned model with ``trainer.test``/``trainer.validate`` after ``fit``.

    What it adds to ``ModelPruning`` (whose other options are fixed here: per-layer amounts, no lottery-ticket reset,
    masks not baked into checkpoints):

    * **The same masks as** :class:`~lightning_grda.pruning.greg.GReg`: ``weight_orig`` * ``weight_mask`` with the
      parameter order kept; the masked entries of ``weight_orig`` are zeroed after every optimizer step, so they
      stay exactly zero with momentum and weight decay. With ``"filter"``, a pruned channel's bias entry is masked
      too, so its output is exactly zero.
    * **Resume.** ``ModelPruning`` keeps no state and, by default, saves checkpoints with the masks baked in, so a
      resumed run would lose them. Here checkpoints keep the masks, a pruned checkpoint loads into a fresh model
      (``load_state_dict`` pre-hooks re-create the structure), and whether (and at which epoch) it pruned is saved,
      so a resumed run never prunes twice.
    * **Layer selection** as GReg's ``layers``, and a per-layer table of filters removed at the end of fitting.

    Args:
        sparsity: the fraction of each layer's weights (or filters) to prune, ``0 <= sparsity < 1``
            (``round(sparsity * n)`` per layer).
        epoch: with ``fine_tune=True``, the 0-based epoch at whose end to prune. Must be ``None`` with
            ``fine_tune=False``.
        granularity: ``"weight"`` (unstructured) or ``"filter"`` (output channels).
        fine_tune: prune at the end of ``epoch`` and fine-tune afterwards, or prune at the end of training.
        layers: which layers' weights to prune (default: every ``Conv2d`` and ``Linear``); see ``GReg``.
        make_permanent: at the end of fitting, bake the masks into the weights.
        print_table: print the per-layer table at the end of fitting (rank zero).

    Raises:
        ValueError: for an invalid argument (naming it); at ``setup`` for a ``layers`` entry that matches no layer;
            at fit start with ``fine_tune=False`` and no ``max_epochs``.

    Example:
        >>> pruner = OneShotMagnitudePruning(sparsity=0.9, epoch=19, granularity="filter", layers=["features"])
        >>> pruner.state_key.replace(", 'fine_tune': True", "")
        "OneShotMagnitudePruning{'sparsity': 0.9, 'epoch': 19, 'granularity': 'filter', 'layers': ['features']}"
    """

    def __init__(
        self,
        sparsity: float = 0.9,
        epoch: int | None = None,
        granularity: Literal["weight", "filter"] = "weight",
        fine_tune: bool = True,
        layers: LayerSpec = None,
        make_permanent: bool = False,
        print_table: bool = True,
    ) -> None:
        check_real("sparsity", sparsity, low=0.0, high=1.0, high_open=True)
        if granularity not in ("weight", "filter"):
            raise ValueError(f"Invalid granularity: {granularity!r}; expected 'weight' or 'filter'")
        if fine_tune:
            if epoch is None:
                raise ValueError("Invalid epoch: None; with fine_tune=True, give the 0-based epoch to prune at")
            check_int("epoch", epoch, low=0)
        elif epoch is not None:
            raise ValueError(f"Invalid epoch: {epoch!r}; with fine_tune=False pruning is at the last epoch: give None")
        layers = check_layers(layers)
        filters = granularity == "filter"
        super().__init__(
            pruning_fn="ln_structured" if filters else "l1_unstructured",
            parameter_names=["weight"],
            use_global_unstructured=False,
            amount=float(sparsity),
            apply_pruning=self._due,
            make_pruning_permanent=False,  # checkpoints keep the masks: a resumed run needs them
            use_lottery_ticket_hypothesis=False,
            pruning_dim=0 if filters else None,
            pruning_norm=1 if filters else None,
        )
        self.sparsity = float(sparsity)
        self.epoch = epoch
        self.granularity = granularity
        self.fine_tune = fine_tune
        self.layers = layers
        self.make_permanent_at_end = make_permanent
        self.print_table = print_table
        # state (saved in checkpoints)
        self.pruned_at_epoch: int | None = None
        # per fit
        self.prune_epoch: int | None = epoch
        self._layers: list[tuple[str, nn.Module]] = []
        self._targets: list[Target] = []
        self._hooks: list[Any] = []
        self._keeper = MaskKeeper([])
        self._epoch = 0

    @property
    @override
    def state_key(self) -> str:
        return self._generate_state_key(
            sparsity=self.sparsity,
            epoch=self.epoch,
            granularity=self.granularity,
            fine_tune=self.fine_tune,
            layers=layer_names(self.layers),
        )

    @property
    def pruned(self) -> bool:
        """Whether the masks have been applied."""
        return self.pruned_at_epoch is not None

    def _due(self, epoch: int) -> bool:
        """``ModelPruning``'s ``apply_pruning``: prune at the end of ``prune_epoch``, once."""
        return not self.pruned and epoch == self.prune_epoch

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._layers = select_layers(pl_module, self.layers)
        self._targets = [Target(f"{name}.weight", m, "weight") for name, m in self._layers]
        if self.granularity == "filter":
            self._targets += [
                Target(f"{name}.bias", m, "bias")
                for name, m in self._layers
                if isinstance(getattr(m, "bias", None), nn.Parameter) or is_pruned(m, "bias")
            ]
        self._keeper = MaskKeeper(self._targets)
        self._hooks = register_structure_hooks(self._targets)  # before the checkpoint's module state loads
        super().setup(trainer, pl_module, stage)

    @override
    def filter_parameters_to_prune(self, parameters_to_prune: Any = ()) -> list[tuple[nn.Module, str]]:
        """The selected layers' weights (``ModelPruning`` otherwise takes every layer with a weight)."""
        return [(m, "weight") for _, m in self._layers]

    @override
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.fine_tune:
            if trainer.max_epochs is None or trainer.max_epochs < 1:
                raise ValueError(
                    f"Invalid max_epochs: {trainer.max_epochs!r}; OneShotMagnitudePruning(fine_tune=False) prunes at "
                    "the end of the last epoch: set Trainer(max_epochs=...)"
                )
            self.prune_epoch = trainer.max_epochs - 1
        elif not self.pruned and trainer.max_epochs is not None and 0 <= trainer.max_epochs <= self.epoch:
            rank_zero_warn(
                f"OneShotMagnitudePruning(epoch={self.epoch}) will never prune: training stops after "
                f"max_epochs={trainer.max_epochs} (epochs are 0-based)."
            )
        self._keeper.attach(trainer.optimizers)

    @override
    def apply_pruning(self, amount: int | float) -> None:
        """Prune every selected layer by ``amount`` (``ModelPruning``), keeping parameter order; mask filter biases."""
        with ExitStack() as stack:
            for _, module in self._layers:
                stack.enter_context(same_parameter_order(module))
            super().apply_pruning(amount)
        if self.granularity == "filter":
            for target in self._targets:
                if target.name == "bias":
                    mask = target.module.weight_mask
                    apply_mask(target.module, "bias", mask.reshape(mask.shape[0], -1).any(dim=1))
        self._keeper.zero()
        self.pruned_at_epoch = self._epoch
        rows = self.report()
        zeros, total = sum(r.zeros for r in rows), sum(r.weights for r in rows)
        rank_zero_info(
            f"OneShotMagnitudePruning: end of epoch {self._epoch}: pruned {zeros:,} of {total:,} weights "
            f"({zeros / max(total, 1):.1%}) in {len(rows)} layers by L1 {self.granularity}"
            + ("; fine-tuning with the masks held" if self.fine_tune else "")
        )

    @override
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._epoch = trainer.current_epoch
        super().on_train_epoch_end(trainer, pl_module)

    @override
    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.pruned and self.sparsity > 0:
            rank_zero_warn(f"OneShotMagnitudePruning never pruned: training ended before epoch {self.prune_epoch}.")
        if self.make_permanent_at_end and self.pruned:
            make_pruning_permanent(pl_module)
        if self.print_table:
            self._print_table()

    @override
    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._keeper.detach()
        for handle in self._hooks:
            handle.remove()
        self._hooks = []

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"pruned_at_epoch": self.pruned_at_epoch}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.pruned_at_epoch = state_dict.get("pruned_at_epoch")

    def report(self, module: nn.Module | None = None) -> list[PruningRow]:
        """Per layer: the filters (output channels) removed and the zero weights, see :func:`pruning_report`.

        Args:
            module: the model; default: the one of the last ``fit`` (its layers as resolved at ``setup``).
        """
        if module is None:
            if not self._layers:
                raise RuntimeError("OneShotMagnitudePruning.report() needs a module before setup: pass `module`")
            return report_rows(self._layers)
        return pruning_report(module, self.layers)

    @rank_zero_only
    def _print_table(self) -> None:
        title = f"One-shot L1 ({self.granularity}, sparsity {self.sparsity:g} per layer)"
        echo(None, pruning_table(self.report(), title=title))
