"""One-shot magnitude (L1) pruning: the baseline GReg is compared with, as a Trainer callback.

Magnitude pruning: Song Han, Jeff Pool, John Tran, William J. Dally. *Learning both Weights and Connections for
Efficient Neural Networks*. NeurIPS 2015 (unstructured); Hao Li, Asim Kadav, Igor Durdanovic, Hanan Samet, Hans Peter
Graf. *Pruning Filters for Efficient ConvNets*. ICLR 2017 (filters by L1 norm). GReg (Wang et al., ICLR 2021,
arXiv:2012.09243) reports against the one-shot L1 baseline with the same per-layer ratios.
"""

from __future__ import annotations

from typing import Any, Literal

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch import Tensor, nn
from torch.nn.utils import prune
from typing_extensions import override

from lightning_grda.checks import check_bool, check_choice, check_int, check_real, invalid
from lightning_grda.layers import LayerSpec, check_layers, layer_names
from lightning_grda.pruning.masks import apply_mask, make_pruning_permanent
from lightning_grda.pruning.pruned_layers import PrunedLayers
from lightning_grda.sparsity import PruningRow, effective

__all__ = ["OneShotMagnitudePruning", "magnitude_mask"]


def magnitude_mask(weight: Tensor, sparsity: float, granularity: Literal["weight", "filter"]) -> Tensor:
    """The keep-mask (1 = kept) that prunes ``round(sparsity * n)`` of ``weight``'s entries or output channels.

    Entries are scored by ``|w|`` (``torch.nn.utils.prune.L1Unstructured``), output channels (dim 0) by their L1 norm
    (``LnStructured(n=1, dim=0)``); the lowest scores go. The scores come from ``weight`` as given: pass the
    effective weight of a pruned layer, and its zeros, already the lowest, count toward ``sparsity``.

    Example:
        >>> magnitude_mask(torch.tensor([[0.1, -3.0], [2.0, 0.0]]), 0.5, "weight").tolist()
        [[0.0, 1.0], [1.0, 0.0]]
        >>> magnitude_mask(torch.tensor([[0.1, -3.0], [2.0, 0.0]]), 0.5, "filter").tolist()
        [[1.0, 1.0], [0.0, 0.0]]
    """
    method = prune.LnStructured(sparsity, n=1, dim=0) if granularity == "filter" else prune.L1Unstructured(sparsity)
    return method.compute_mask(weight, default_mask=torch.ones_like(weight))


class OneShotMagnitudePruning(Callback):
    """Prune each layer once by magnitude at the end of an epoch, then fine-tune (or stop): the L1 baseline.

    The masks are computed with :mod:`torch.nn.utils.prune`'s methods (``L1Unstructured`` per layer for
    ``granularity="weight"``; ``LnStructured`` with ``n=1, dim=0``, i.e. output channels by L1 norm, for
    ``"filter"``) and applied once:

    * ``fine_tune=True``: at the end of the 0-based epoch ``epoch``; epochs ``epoch + 1 ..`` fine-tune the pruned
      model with the masks held.
    * ``fine_tune=False``: at the end of the last epoch (``max_epochs - 1``), so no training happens after it. That
      epoch's validation runs before the pruning (Lightning validates before ``on_train_epoch_end``): evaluate the
      pruned model with ``trainer.test``/``trainer.validate`` after ``fit``.

    * **The same masks as** :class:`~lightning_grda.pruning.greg.GReg`: ``weight_orig`` * ``weight_mask`` with the
      parameter order kept (also by :meth:`make_permanent`); the masked entries of ``weight_orig`` are zeroed after
      every optimizer step, so they stay exactly zero with momentum and weight decay. With ``"filter"``, a pruned
      channel's bias entry is masked too, so its output is exactly zero.
    * **Sparsity holds, it does not compound.** The scores come from each layer's effective weight, so on a model
      that is already pruned (a new instance refitting it), the pruned weights count toward ``sparsity``: each layer
      ends with ``round(sparsity * n)`` masked entries, as with GReg, not ``sparsity`` of what was left.
    * **Resume.** Checkpoints keep the masks, a pruned checkpoint loads into a fresh model (``load_state_dict``
      pre-hooks re-create the structure), and whether (and at which epoch) it pruned is saved, so a resumed run
      never prunes twice.
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
        check_choice("granularity", granularity, ("weight", "filter"))
        check_bool("fine_tune", fine_tune)
        if fine_tune:
            if epoch is None:
                raise invalid("epoch", epoch, "the 0-based epoch to prune at, with fine_tune=True")
            check_int("epoch", epoch, low=0)
        elif epoch is not None:
            raise invalid("epoch", epoch, "None with fine_tune=False (pruning is at the last epoch)")
        check_bool("make_permanent", make_permanent)
        check_bool("print_table", print_table)
        self.sparsity = float(sparsity)
        self.epoch = epoch
        self.granularity = granularity
        self.fine_tune = fine_tune
        self.layers = check_layers(layers)
        self.make_permanent_at_end = make_permanent
        self.print_table = print_table
        # state (saved in checkpoints)
        self.pruned_at_epoch: int | None = None
        # per fit
        self.prune_epoch: int | None = epoch
        self._layers = PrunedLayers(self.layers, granularity)

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

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._layers.setup(pl_module)  # the load hooks go in before the checkpoint's module state loads

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
        self._layers.attach(trainer.optimizers)

    @override
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.pruned and trainer.current_epoch == self.prune_epoch:
            self.apply_pruning(trainer.current_epoch)

    @override
    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.pruned and self.sparsity > 0:
            rank_zero_warn(f"OneShotMagnitudePruning never pruned: training ended before epoch {self.prune_epoch}.")
        if self.make_permanent_at_end and self.pruned:
            self.make_permanent(pl_module)
        if self.print_table:
            title = f"One-shot L1 ({self.granularity}, sparsity {self.sparsity:g} per layer)"
            self._layers.print_table(title, trainer)

    @override
    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._layers.teardown()

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"pruned_at_epoch": self.pruned_at_epoch}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.pruned_at_epoch = state_dict.get("pruned_at_epoch")

    @torch.no_grad()
    def apply_pruning(self, epoch: int) -> None:
        """Mask every selected layer now by :func:`magnitude_mask` of its effective weight (and filter biases)."""
        for _, module in self._layers.layers:
            keep = magnitude_mask(effective(module), self.sparsity, self.granularity)
            apply_mask(module, "weight", keep)
            if any(t.module is module and t.name == "bias" for t in self._layers.targets):
                apply_mask(module, "bias", keep.reshape(keep.shape[0], -1).any(dim=1))
        self.pruned_at_epoch = epoch
        rows = self.report()
        zeros, total = sum(r.zeros for r in rows), sum(r.weights for r in rows)
        rank_zero_info(
            f"OneShotMagnitudePruning: end of epoch {epoch}: pruned {zeros:,} of {total:,} weights "
            f"({zeros / max(total, 1):.1%}) in {len(rows)} layers by L1 {self.granularity}"
            + ("; fine-tuning with the masks held" if self.fine_tune else "")
        )

    def report(self, module: nn.Module | None = None) -> list[PruningRow]:
        """Per layer: the filters (output channels) removed and the zero weights, see :func:`pruning_report`.

        Args:
            module: the model; default: the one of the last ``fit`` (its layers as resolved at ``setup``).
        """
        return self._layers.report(module, owner=type(self).__name__)

    def make_permanent(self, module: nn.Module) -> list[str]:
        """Bake every mask of ``module`` into its weights, keeping the parameter order; returns the tensors' names.

        See :func:`~lightning_grda.pruning.masks.make_pruning_permanent` (unlike Lightning's
        ``ModelPruning.make_pruning_permanent``, which moves each weight after the module's other parameters and so
        mispairs optimizer state on resume). Do it after training: afterwards nothing holds the pruned weights at zero.
        """
        return make_pruning_permanent(module)
