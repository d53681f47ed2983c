"""lightning-grda: prune while you train, with the gRDA optimizer for PyTorch Lightning."""

from lightning_grda.optim import GRDA, grda, threshold_increment

__version__ = "0.1.0.dev0"

__all__ = ["GRDA", "__version__", "grda", "threshold_increment"]
