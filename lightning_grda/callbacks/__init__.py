"""Trainer callbacks: the learning-rate schedules of the gRDA paper, the optimizer swap and the sparsity monitor."""

from lightning_grda.callbacks.lr_drop import OneTimeLRDrop
from lightning_grda.callbacks.lr_schedule import HoldDecayLR, hold_decay_factor
from lightning_grda.callbacks.sparsity_monitor import SparsityMonitor
from lightning_grda.callbacks.swap import GRDASwap

__all__ = ["GRDASwap", "HoldDecayLR", "OneTimeLRDrop", "SparsityMonitor", "hold_decay_factor"]
