"""lightning-grda: prune while you train, with the gRDA optimizer for PyTorch Lightning.

The public API: the optimizer (:class:`GRDA`), the LightningModule mixin (:class:`GRDAMixin`), the Trainer
callbacks, the sparsity functions, and the ``lightning-grda`` command (:func:`lightning_grda.cli.main`).
Datamodules live in :mod:`lightning_grda.data`, models in :mod:`lightning_grda.models`, GReg and the magnitude
baselines in :mod:`lightning_grda.pruning`.
"""

from lightning_grda.callbacks import GRDASwap, HoldDecayLR, OneTimeLRDrop, SparsityMonitor
from lightning_grda.mixin import GRDAMixin
from lightning_grda.optim import GRDA, grda, threshold_increment
from lightning_grda.pruning import GReg, OneShotMagnitudePruning
from lightning_grda.sparsity import global_sparsity, parameter_sparsity, sparsity_report

__version__ = "0.1.0.dev0"

__all__ = [
    "GRDA",
    "GRDAMixin",
    "GRDASwap",
    "GReg",
    "HoldDecayLR",
    "OneShotMagnitudePruning",
    "OneTimeLRDrop",
    "SparsityMonitor",
    "__version__",
    "global_sparsity",
    "grda",
    "parameter_sparsity",
    "sparsity_report",
    "threshold_increment",
]
