"""Optimizers: gRDA."""

from lightning_grda.optim.grda import GRDA, grda, threshold_increment
from lightning_grda.optim.param_groups import norm_and_bias_parameters, split_exempt

__all__ = ["GRDA", "grda", "norm_and_bias_parameters", "split_exempt", "threshold_increment"]
