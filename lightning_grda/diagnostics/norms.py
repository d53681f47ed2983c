"""``||w||_2 / ||w||_1``, the measure of concentration Chao et al. (NeurIPS 2020) track for gRDA's weights.

For ``N`` weights it lies in ``[1/sqrt(N), 1]``: ``1/sqrt(N)`` when all have equal magnitude, 1 when one weight holds
all the mass. Sparser weights give larger ratios.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from torch import Tensor

from lightning_grda.checks import invalid
from lightning_grda.diagnostics._loss import flat_params

__all__ = ["norm_ratio"]


def norm_ratio(state: Mapping[str, Tensor], names: Sequence[str] | None = None) -> float:
    """``||w||_2 / ||w||_1`` over the tensors ``names`` of ``state`` (default: all floating-point tensors).

    Example:
        >>> import torch
        >>> norm_ratio({"w": torch.tensor([3.0, -4.0])})
        0.7142857142857143
    """
    if names is None:
        names = [k for k, v in state.items() if v.is_floating_point()]
    w = flat_params(state, names).double()
    l1 = float(w.abs().sum())
    if l1 == 0.0:
        raise invalid("state", "all zeros", "weights with at least one nonzero value")
    return float(w.norm()) / l1
