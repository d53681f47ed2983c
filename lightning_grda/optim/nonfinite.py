"""The non-finite check before a gRDA step: one read of every gradient, one host synchronisation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor

NonFinitePolicy = Literal["raise", "skip", "ignore"]
NONFINITE_POLICIES = ("raise", "skip", "ignore")

__all__ = ["NONFINITE_POLICIES", "SUM_ONE_BY_ONE", "NonFinitePolicy", "all_finite"]

# On CPU, gradients with at least this many values are checked by their own sum; smaller ones share one
# _foreach_norm call (see all_finite).
SUM_ONE_BY_ONE = 1 << 16


def _any_dtensor(tensors: Sequence[Tensor]) -> bool:
    if not torch.distributed.is_available():  # a torch build without distributed has no DTensor
        return False
    from torch.distributed.tensor import DTensor

    return any(isinstance(t, DTensor) for t in tensors)


def all_finite(grads: Sequence[Tensor]) -> Tensor:
    """A 0-dim bool tensor, False if any entry of any gradient may be NaN or inf. Reads each gradient once, no sync.

    A sum (or a 2-norm) is NaN or inf whenever one of its terms is. On accelerators, float32/float64 gradients take
    one ``torch._foreach_norm`` call (one multi-tensor kernel, as ``clip_grad_norm_`` uses). On CPU that call runs
    each norm on one thread, so there the large gradients are summed one by one (torch's sum splits a large tensor
    over the threads and reads at memory speed; it also overflows later than a norm's squares) and only the many
    small ones (biases, normalisation parameters) share the ``_foreach_norm`` call, a single C++ loop where a Python
    loop of small reductions costs more than the reading. Half-precision gradients, whose sums would overflow at
    65504, are summed in float32. FSDP2's DTensor gradients all take one ``_foreach_norm`` call: one reduction
    across ranks for all of them (a sum and a norm reduce across ranks in two ways that one stack cannot mix, and a
    DTensor op costs a sharding decision each). Finite values can still overflow a sum (above 3e38 in float32) or a
    norm (above 1e19, or 65504 for a half-precision DTensor): callers confirm a False answer element by element
    before acting on it. In reverse order, so that the update then starts with the gradients read last, which may
    still sit in the CPU's cache.
    """
    if _any_dtensor(grads):
        return torch.stack(torch._foreach_norm(list(reversed(grads)), 2.0)).isfinite().all()
    one_by_one = SUM_ONE_BY_ONE if grads[0].device.type == "cpu" else float("inf")
    checks: list[Tensor] = []
    small: list[Tensor] = []
    for g in reversed(grads):
        if g.dtype not in (torch.float32, torch.float64):
            checks.append(g.sum(dtype=torch.float32))
        elif g.numel() >= one_by_one:
            checks.append(g.sum())
        else:
            small.append(g)
    if small:
        checks += torch._foreach_norm(small, 2.0)
    device = grads[0].device
    if any(c.device != device for c in checks):
        checks = [c.to(device, non_blocking=True) for c in checks]
    return torch.stack(checks).isfinite().all()
