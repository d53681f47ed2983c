"""The fused gRDA step: the dual-average update and the soft threshold as one compiled kernel.

Eager torch needs two passes per tensor (``a -= lr * g``, then ``w = softshrink(a, T)``): five memory streams per
element. Compiled, each element is read and written once: read ``g`` and ``a``, write ``a`` and ``w``, four streams,
against three for plain SGD's ``w -= lr * g``. torch has no such fused kernel, so the update is written here as a
plain function and left to ``torch.compile`` (inductor), which fuses it and caches the compiled code on disk.

The kernel is compiled once per (device, dtype) combination with dynamic shapes, over flat 1-D views of each
tensor, so one compiled graph serves every parameter shape; the learning rate and the threshold are dynamic
floats, so changing them never recompiles. (Writing ``lr`` as ``alpha=`` would specialise on its value.)
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn.functional import softshrink

__all__ = ["fused_grda_"]


def _update_(p: Tensor, g: Tensor, a: Tensor, neg_lr: float, t: float) -> None:
    new = a + g.to(a.dtype) * neg_lr
    a.copy_(new)
    p.copy_(softshrink(new, t))


_kernel = None


def _flat(x: Tensor) -> Tensor | None:
    """A 1-D view over ``x``'s elements in memory order, for the two dense layouts parameters use; else None."""
    if x.is_contiguous():
        return x.view(-1)
    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last):
        return x.permute(0, 2, 3, 1).view(-1)
    return None


def fused_grda_(
    params: list[Tensor], grads: list[Tensor], duals: list[Tensor], lr: float, thresholds: list[float]
) -> None:
    """One fused gRDA step for the given tensors, in place (see :func:`lightning_grda.optim.grda.grda`).

    A tensor whose parameter, gradient and dual average do not share one dense layout takes the eager two-pass
    update instead; the result is the same up to floating-point rounding (the kernel may use fused multiply-add).
    """
    global _kernel
    if _kernel is None:
        _kernel = torch.compile(_update_, fullgraph=True, dynamic=True)
    for p, g, a, t in zip(params, grads, duals, thresholds):
        if p.stride() == g.stride() == a.stride():
            fp, fg, fa = _flat(p), _flat(g), _flat(a)
            if fp is not None and fg is not None and fa is not None:
                _kernel(fp, fg, fa, -lr, t)
                continue
        a.add_(g, alpha=-lr)
        p.copy_(softshrink(a, t))
