"""Bake pruning masks into plain weights, in a state dict: ``weight_orig * weight_mask`` becomes ``weight``.

A checkpoint written while :class:`~lightning_grda.pruning.GReg` or the magnitude pruners hold their masks
(``torch.nn.utils.prune``) stores each pruned tensor as ``<name>_orig`` and ``<name>_mask``. Every consumer after
training (the compact file, thinning, ONNX) wants the plain ``<name>``, with zeros where pruned, under the key the
unpruned model expects.
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor

__all__ = ["bake_masks"]


def bake_masks(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """A copy of ``state_dict`` with every ``<k>_orig`` / ``<k>_mask`` pair replaced by ``<k> = orig * mask``.

    Keys without a pair are kept as they are (in their order); a ``_orig`` without its ``_mask`` is kept too.

    Example:
        >>> import torch
        >>> sd = {"w_orig": torch.tensor([1.0, 2.0]), "w_mask": torch.tensor([0.0, 1.0]), "b": torch.ones(1)}
        >>> {k: v.tolist() for k, v in bake_masks(sd).items()}
        {'w': [0.0, 2.0], 'b': [1.0]}
    """
    out: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        if key.endswith("_orig") and key[: -len("_orig")] + "_mask" in state_dict:
            base = key[: -len("_orig")]
            out[base] = value * state_dict[base + "_mask"].to(value.dtype)
        elif key.endswith("_mask") and key[: -len("_mask")] + "_orig" in state_dict:
            continue
        else:
            out[key] = value
    return out
