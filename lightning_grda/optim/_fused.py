"""The fused gRDA step: the whole step, over all parameters of a group, as one ``torch.compile``-d graph.

Eager torch needs two passes per tensor (``a -= lr * g``, then ``w = softshrink(a, T)``) and a Python call or two per
tensor. Compiled, inductor fuses each tensor's update into one loop (read ``g`` and ``a``, write ``a`` and ``w``)
and fuses the loops of all tensors horizontally, as torch's own compiled optimizers do; the threshold arithmetic
on the 0-dim step and threshold tensors is part of the same graph.

The graph is compiled at the first step (seconds; inductor caches the code on disk) and reused while the group's
tensors keep their shapes, dtypes and layouts. The learning rate enters as a 0-dim float64 tensor, so an lr change
never recompiles.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

__all__ = ["compiled_grda_"]

_compiled: Callable[..., Any] | None = None


def compiled_grda_(
    params: list[Tensor],
    grads: list[Tensor],
    duals: list[Tensor],
    steps: list[Tensor],
    thresholds: list[Tensor],
    lr: float | Tensor,
    c: float,
    mu: float,
) -> None:
    """One compiled gRDA step for one parameter group, in place (see :func:`lightning_grda.optim.functional.grda`)."""
    global _compiled
    if _compiled is None:
        from lightning_grda.optim.functional import _tensor_grda

        _compiled = torch.compile(_tensor_grda, fullgraph=True, dynamic=False)
    if not isinstance(lr, Tensor):
        lr = torch.tensor(lr, dtype=torch.float64)
    _compiled(params, grads, duals, steps, thresholds, lr, c, mu)
