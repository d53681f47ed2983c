"""Pruning callbacks compared with gRDA: GReg (growing regularization) and one-shot magnitude pruning.

All of them mask weights with :mod:`torch.nn.utils.prune` in the same way (``weight_orig`` * ``weight_mask``), keep
masked weights exactly zero through fine-tuning, and resume from a checkpoint taken at any point.

Modules: :mod:`~lightning_grda.pruning.masks` (mask structure, load hooks, :class:`~.masks.MaskKeeper`),
:mod:`~lightning_grda.pruning.pruned_layers` (the mask lifecycle both callbacks hold),
:mod:`~lightning_grda.pruning.greg_schedule` (GReg's schedule as pure functions), :mod:`~lightning_grda.pruning.greg`
and :mod:`~lightning_grda.pruning.magnitude` (the callbacks). Layer selection is :mod:`lightning_grda.layers`; the
per-layer counts (``pruning_report``) are :mod:`lightning_grda.sparsity`'s.
"""

from lightning_grda.pruning.greg import GReg
from lightning_grda.pruning.greg_schedule import GRegSchedule, Phase
from lightning_grda.pruning.magnitude import OneShotMagnitudePruning
from lightning_grda.pruning.masks import allow_pruned_state_dicts, make_pruning_permanent
from lightning_grda.sparsity import PruningRow, pruning_report, pruning_table  # re-exported: their old public home

__all__ = [
    "GReg",
    "GRegSchedule",
    "OneShotMagnitudePruning",
    "Phase",
    "PruningRow",
    "allow_pruned_state_dicts",
    "make_pruning_permanent",
    "pruning_report",
    "pruning_table",
]
