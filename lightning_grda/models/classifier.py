"""The image classifier LightningModule that the ``lightning-grda`` command trains."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
from torch import Tensor, nn
from torchmetrics.classification import MulticlassAccuracy

from lightning_grda.checks import check_bool, check_real
from lightning_grda.mixin import GRDAMixin
from lightning_grda.models.backbones import build_backbone

__all__ = ["ImageClassifier"]


class ImageClassifier(GRDAMixin, pl.LightningModule):
    """A backbone chosen by name, trained with cross-entropy and optimised with :class:`~lightning_grda.GRDA`.

    ``configure_optimizers`` comes from :class:`~lightning_grda.GRDAMixin`: a ``GRDA(lr, c, mu)`` over every
    parameter (``exempt_norm_and_bias`` moves biases and normalisation weights to a ``c=0`` group). To compare with
    another optimizer from the command line, give LightningCLI's ``--optimizer`` (e.g. ``torch.optim.SGD``), which
    replaces it; ``c=0`` is also SGD without momentum, exactly.

    Logged Metrics:
        ``train_loss`` (every logged step), ``train_acc`` (per epoch), ``val_loss``, ``val_acc``, ``test_loss``,
        ``test_acc``, and ``val_acc_top5`` / ``test_acc_top5`` when there are more than 5 classes. Accuracies are
        torchmetrics' ``MulticlassAccuracy`` (micro average), reduced over all DDP ranks.

    Args:
        backbone: the architecture, one of :data:`~lightning_grda.models.backbones.BACKBONES`.
        num_classes: the number of classes (the CLI links it from the datamodule).
        in_channels: the number of image channels (the CLI links it from the datamodule).
        lr: GRDA's learning rate.
        c: GRDA's regularisation strength (0 = SGD).
        mu: GRDA's growth exponent.
        exempt_norm_and_bias: keep biases and normalisation parameters dense (``c=0``); the paper prunes them too.
        label_smoothing: passed to the cross-entropy loss.

    Raises:
        ValueError: an unknown ``backbone`` (the message lists the known ones), a bad ``num_classes``, a negative or
            non-finite ``lr`` or ``c``, ``mu <= 0``, or ``label_smoothing`` outside ``[0, 1]``.

    Example:
        >>> import torch
        >>> model = ImageClassifier("digits_cnn", num_classes=10, in_channels=1, lr=0.1, c=0.001, mu=0.6)
        >>> model(torch.zeros(2, 1, 8, 8)).shape
        torch.Size([2, 10])
        >>> type(model.configure_optimizers()).__name__
        'GRDA'
    """

    def __init__(
        self,
        backbone: str = "digits_cnn",
        num_classes: int = 10,
        in_channels: int = 1,
        lr: float = 0.1,
        c: float = 0.005,
        mu: float = 0.55,
        exempt_norm_and_bias: bool = False,
        label_smoothing: float = 0.0,
    ) -> None:
        # Checked here, when the model is built (by the CLI: before the Trainer, the data or any file), not first
        # in `configure_optimizers`.
        check_real("lr", lr, low=0.0)
        check_real("c", c, low=0.0)
        check_real("mu", mu, low=0.0, low_open=True)
        check_real("label_smoothing", label_smoothing, low=0.0, high=1.0)
        check_bool("exempt_norm_and_bias", exempt_norm_and_bias)
        super().__init__(grda_exempt_norm_and_bias=exempt_norm_and_bias)
        self.save_hyperparameters()
        self.backbone = build_backbone(backbone, num_classes=num_classes, in_channels=in_channels)
        self.loss = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
        self.top_k = (1, 5) if num_classes > 5 else (1,)
        self.metrics = nn.ModuleDict(
            {
                f"{stage}_acc{'' if k == 1 else f'_top{k}'}": MulticlassAccuracy(num_classes, top_k=k, average="micro")
                for stage in ("train", "val", "test")
                for k in (self.top_k if stage != "train" else (1,))
            }
        )

    def forward(self, x: Tensor) -> Tensor:
        """The logits of the images ``x``."""
        return self.backbone(x)

    def _shared_step(self, batch: Any, stage: str) -> Tensor:
        x, y = batch
        logits = self(x)
        loss = self.loss(logits, y)
        on_step = stage == "train"
        self.log(f"{stage}_loss", loss, on_step=on_step, on_epoch=not on_step, prog_bar=on_step, sync_dist=not on_step)
        for name, metric in self.metrics.items():
            if name.startswith(f"{stage}_"):
                metric(logits.detach(), y)
                self.log(name, metric, on_step=False, on_epoch=True, prog_bar=name == f"{stage}_acc")
        return loss

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        """Cross-entropy on one batch."""
        return self._shared_step(batch, "train")

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        """Loss and accuracy on one validation batch."""
        self._shared_step(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        """Loss and accuracy on one test batch."""
        self._shared_step(batch, "test")

    def predict_step(self, batch: Any, batch_idx: int) -> Tensor:
        """The predicted class of each image (a batch may be ``(x, y)`` or ``x``)."""
        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        return self(x).argmax(dim=1)
