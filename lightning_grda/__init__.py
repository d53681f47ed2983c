"""lightning-grda: prune while you train, with the gRDA optimizer for PyTorch Lightning."""

__version__ = "0.1.0.dev0"

__all__ = ["__version__"]
