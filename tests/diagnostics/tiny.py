"""Tiny LightningModules for the diagnostics tests: a few hundred parameters, random data."""

from __future__ import annotations

import lightning as L
import torch
from torch import nn


def batches(n: int = 4, size: int = 8, features: int = 4, classes: int = 3, seed: int = 0) -> list:
    g = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(size, features, generator=g), torch.randint(0, classes, (size,), generator=g)) for _ in range(n)
    ]


class TinyClassifier(L.LightningModule):
    """Linear -> (BatchNorm) -> tanh -> Linear, cross-entropy; ``self.log`` in training_step like a real module."""

    def __init__(self, features: int = 4, hidden: int = 5, classes: int = 3, bn: bool = False) -> None:
        super().__init__()
        self.fc1 = nn.Linear(features, hidden)
        self.bn = nn.BatchNorm1d(hidden) if bn else nn.Identity()
        self.fc2 = nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.tanh(self.bn(self.fc1(x))))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss


class NoLoss(TinyClassifier):
    def training_step(self, batch, batch_idx):
        self.log("train_loss", 0.0)


def states(module: nn.Module, seeds=(1, 2)) -> list[dict]:
    out = []
    for seed in seeds:
        torch.manual_seed(seed)
        other = type(module)(**getattr(module, "_tiny_kwargs", {}))
        out.append({k: v.clone() for k, v in other.state_dict().items()})
    return out
