"""Tiny models and data shared by the tests: fast, random, no network."""

from __future__ import annotations

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def random_loader(n: int = 64, batch_size: int = 8, features: int = 8, classes: int = 3, seed: int = 0) -> DataLoader:
    """A deterministic classification loader of ``n`` random samples."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, features, generator=g)
    y = torch.randint(0, classes, (n,), generator=g)
    return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=False)


class TinyNet(nn.Module):
    """Linear -> LayerNorm -> ReLU -> Linear: has weights, biases and a norm layer."""

    def __init__(self, features: int = 8, hidden: int = 16, classes: int = 3) -> None:
        super().__init__()
        self.fc1 = nn.Linear(features, hidden)
        self.norm = nn.LayerNorm(hidden)
        self.fc2 = nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.norm(self.fc1(x))))


class TinyModule(L.LightningModule):
    """A user's existing LightningModule: SGD with momentum, optionally a step scheduler."""

    def __init__(self, lr: float = 0.1, scheduler: bool = False, n: int = 64) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = TinyNet()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", nn.functional.cross_entropy(self(x), y))

    def test_step(self, batch, batch_idx):
        x, y = batch
        self.log("test_loss", nn.functional.cross_entropy(self(x), y))

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=self.hparams.lr, momentum=0.9)
        if not self.hparams.scheduler:
            return opt
        return {"optimizer": opt, "lr_scheduler": torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)}

    def train_dataloader(self):
        return random_loader(self.hparams.n)

    def val_dataloader(self):
        return random_loader(16, seed=1)


def flat_params(module: nn.Module) -> torch.Tensor:
    """All parameters of ``module`` as one flat float64 tensor, for exact comparisons."""
    return torch.cat([p.detach().double().flatten() for p in module.parameters()])


def quiet_trainer(root, callbacks=(), max_epochs: int = 1, logger=False, **kwargs) -> L.Trainer:
    """A silent, deterministic CPU Trainer without validation; it checkpoints only with a ``ModelCheckpoint``."""
    callbacks = list(callbacks)
    options = {
        "default_root_dir": root,
        "max_epochs": max_epochs,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "enable_checkpointing": any(isinstance(cb, ModelCheckpoint) for cb in callbacks),
        "logger": logger,
        "accelerator": "cpu",
        "deterministic": True,
        "limit_val_batches": 0,
        "num_sanity_val_steps": 0,
        "callbacks": callbacks,
    }
    options.update(kwargs)
    return L.Trainer(**options)


def spawn_two_ranks(fn, *args) -> None:
    """Run ``fn(rank, port, *args)`` in two spawned processes; ``port`` is a free one for :func:`join_gloo`."""
    import socket

    from torch import multiprocessing

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    multiprocessing.spawn(fn, args=(port, *args), nprocs=2)


def join_gloo(rank: int, port: int) -> None:
    """Join the two-process gloo group that :func:`spawn_two_ranks` started (call from the spawned function)."""
    import os

    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)


class KillAtStep(L.Callback):
    """Kill this process with SIGKILL before optimizer step ``step``: a real crash, for resume tests via the CLI."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        import os
        import signal

        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)
