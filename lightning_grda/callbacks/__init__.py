"""Trainer callbacks: the gRDA paper's learning-rate schedules, the optimizer swap, the sparsity monitor, the export."""

from lightning_grda.callbacks.lr_drop import OneTimeLRDrop
from lightning_grda.callbacks.lr_schedule import HoldDecayLR, hold_decay_factor
from lightning_grda.callbacks.sparse_export import SparseExport
from lightning_grda.callbacks.sparsity_monitor import SparsityMonitor
from lightning_grda.callbacks.swap import GRDASwap

__all__ = ["GRDASwap", "HoldDecayLR", "OneTimeLRDrop", "SparseExport", "SparsityMonitor", "hold_decay_factor"]
