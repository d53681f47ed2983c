"""What the GReg tests share (lightning_grda/pruning/greg.py).

A schedule small enough for a few epochs, tiny modules, callbacks that record each optimizer step, and a seeded fit.
"""

from __future__ import annotations

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from torch import nn

from lightning_grda.pruning.greg import GReg
from lightning_grda.pruning.masks import is_pruned
from lightning_grda.sparsity import effective
from tests.helpers import TinyModule, quiet_trainer, random_loader

BATCHES = 8  # TinyModule(n=64) with batch size 8: optimizer steps per epoch
LAYERS = ("net.fc1", "net.fc2")
# GReg-1: grow 0..11 (4 increments of 0.25, one every 3 steps), hold 12..19, prune at 20, fine-tune 21..
SMALL = dict(delta=0.25, update_interval=3, ceiling=1.0, hold_steps=8)
# GReg-2: pick 0..8 (0.05 every 3 steps to 0.15), grow 9..14 (0.15 + 0.5 k), hold 15..18, prune at 19
SMALL2 = dict(variant=2, pick_delta=0.05, pick_ceiling=0.15, delta=0.5, update_interval=3, ceiling=1.0, hold_steps=4)


class DecayModule(TinyModule):
    """TinyModule with SGD momentum 0.9 and weight decay: both move masked entries of weight_orig if left alone."""

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr, momentum=0.9, weight_decay=0.01)


class ConvModule(TinyModule):
    """A tiny conv net on random 1x4x4 images: filter pruning on real output channels."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(96, 3))

    def forward(self, x):
        return self.net(x.reshape(-1, 1, 4, 4))

    def train_dataloader(self):
        return random_loader(32, features=16)


class LossGrads(Callback):
    """Before GReg in the callbacks list: the loss gradients of each optimizer step, by parameter name."""

    def __init__(self) -> None:
        self.grads: dict[int, dict[str, torch.Tensor]] = {}

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        self.grads[trainer.global_step] = {n: p.grad.detach().clone() for n, p in pl_module.named_parameters()}


class Trace(Callback):
    """After GReg: (phase, lambda) each optimizer step uses, and the global step at which the masks appeared."""

    def __init__(self, greg: GReg) -> None:
        self.greg = greg
        self.steps: dict[int, tuple[int, float]] = {}
        self.grads: dict[int, dict[str, torch.Tensor]] = {}
        self.weights: dict[int, dict[str, torch.Tensor]] = {}
        self.masked_at: int | None = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self.masked_at is None and is_pruned(pl_module.net.fc1):
            self.masked_at = trainer.global_step

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        self.steps[trainer.global_step] = (int(self.greg.phase), self.greg.penalty)
        self.grads[trainer.global_step] = {n: p.grad.detach().clone() for n, p in pl_module.named_parameters()}
        self.weights[trainer.global_step] = {n: p.detach().clone() for n, p in pl_module.named_parameters()}


class ZeroCheck(Callback):
    """After every optimizer step: masked entries are exactly zero in the effective weight AND in weight_orig."""

    def __init__(self) -> None:
        self.checked = 0
        self.first: torch.Tensor | None = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        for layer in (pl_module.net.fc1, pl_module.net.fc2):
            if not is_pruned(layer):
                continue
            masked = layer.weight_mask == 0
            assert masked.any()
            assert torch.count_nonzero(effective(layer)[masked]) == 0
            assert torch.count_nonzero(layer.weight_orig[masked]) == 0
            self.checked += 1
            if self.first is None:
                self.first = effective(layer).clone()


def make_trainer(root, callbacks, max_epochs=4, logger=False, **kwargs) -> L.Trainer:
    return quiet_trainer(root, callbacks, max_epochs=max_epochs, logger=logger, **kwargs)


def fit(root, callbacks, module=None, ckpt_path=None, **kwargs):
    L.seed_everything(0, verbose=False)
    module = module if module is not None else TinyModule()
    trainer = make_trainer(root, callbacks, **kwargs)
    trainer.fit(module, ckpt_path=ckpt_path)
    return module, trainer


def state(module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items()}
