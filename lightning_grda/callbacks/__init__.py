"""Trainer callbacks: the learning-rate schedules of the gRDA paper, the optimizer swap and the sparsity monitor."""

from lightning_grda.callbacks.lr_drop import OneTimeLRDrop
from lightning_grda.callbacks.lr_schedule import HoldDecayLR, hold_decay_factor

__all__ = ["HoldDecayLR", "OneTimeLRDrop", "hold_decay_factor"]
