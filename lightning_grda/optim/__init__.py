"""Optimizers: gRDA."""

from lightning_grda.optim.grda import GRDA, grda, threshold_increment

__all__ = ["GRDA", "grda", "threshold_increment"]
