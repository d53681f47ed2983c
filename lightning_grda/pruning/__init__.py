"""Pruning callbacks compared with gRDA: GReg (growing regularization) and one-shot magnitude pruning.

All of them mask weights with :mod:`torch.nn.utils.prune` in the same way (``weight_orig`` * ``weight_mask``), keep
masked weights exactly zero through fine-tuning, and resume from a checkpoint taken at any point.
"""

from lightning_grda.pruning._masks import (
    PruningRow,
    allow_pruned_state_dicts,
    make_pruning_permanent,
    pruning_report,
    pruning_table,
)
from lightning_grda.pruning.greg import GReg, GRegSchedule, Phase
from lightning_grda.pruning.magnitude import OneShotMagnitudePruning

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
