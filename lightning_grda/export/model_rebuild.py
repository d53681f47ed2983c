"""Rebuild the trained network from a checkpoint of this pack's CLI: the class from its hyperparameters, the weights.

Used by ``lightning-grda export --thin``, which needs a module to trace, not only weights. A Lightning checkpoint
written by :class:`~lightning_grda.models.ImageClassifier` stores its ``__init__`` arguments under
``hyper_parameters`` (``save_hyperparameters``) and the datamodule's under ``datamodule_hyper_parameters``; both are
plain values, read with torch's restricted unpickler.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch
from torch import Tensor, nn

__all__ = ["INPUT_SHAPES", "rebuild_model"]

INPUT_SHAPES: dict[str, tuple[int, int]] = {
    "digits_cnn": (8, 8),
    "vgg16": (32, 32),
    "resnet20": (32, 32),
    "wrn28_10": (32, 32),
    "resnet50": (224, 224),
}
"""The image size each backbone is trained at by the shipped configs (the default of ``--input-shape``)."""


def rebuild_model(
    path: str | os.PathLike[str], state_dict: Mapping[str, Tensor], *, weights_only: bool = True
) -> tuple[nn.Module, tuple[int, ...]]:
    """The backbone of the checkpoint at ``path`` with ``state_dict`` loaded, in eval mode, and its input shape.

    Args:
        path: a Lightning checkpoint of :class:`~lightning_grda.models.ImageClassifier`, or a module saved whole
            with ``torch.save`` (read only with ``weights_only=False``).
        state_dict: the weights (masks already baked), keyed as the checkpoint's ``state_dict``.
        weights_only: read with torch's restricted unpickler.

    Returns:
        ``(module, input_shape)``, the shape of one input without the batch dimension.

    Raises:
        ValueError: the file holds no hyperparameters this pack can rebuild a model from (the message names it).
    """
    from lightning_grda.models import ImageClassifier

    name = str(path)
    obj = torch.load(path, map_location="cpu", weights_only=weights_only)
    if isinstance(obj, nn.Module):
        return obj.eval(), _shape_of(obj, None, {})
    hp = obj.get("hyper_parameters") if isinstance(obj, Mapping) else None
    if not isinstance(hp, Mapping) or "backbone" not in hp:
        raise ValueError(
            f"Invalid checkpoint for --thin: {name!r} has no ImageClassifier hyperparameters to rebuild the model "
            "from (a Lightning checkpoint of this pack's CLI, or a module saved with torch.save and --trust-pickle)"
        )
    keys = ("backbone", "num_classes", "in_channels")
    model = ImageClassifier(**{k: hp[k] for k in keys if k in hp})
    model.load_state_dict(state_dict, strict=False)
    backbone = model.backbone
    prefix = "backbone."
    backbone.load_state_dict({k[len(prefix) :]: v for k, v in state_dict.items() if k.startswith(prefix)})
    data = obj.get("datamodule_hyper_parameters") or {}
    return backbone.eval(), _shape_of(backbone, hp, data)


def _shape_of(module: nn.Module, hp: Mapping | None, data: Mapping) -> tuple[int, ...]:
    if hp is None:
        return (1, 8, 8)
    channels = int(hp.get("in_channels", 1))
    if "image_size" in data:
        return (channels, int(data["image_size"]), int(data["image_size"]))
    return (channels, *INPUT_SHAPES.get(str(hp["backbone"]), (32, 32)))
