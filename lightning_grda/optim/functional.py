"""Functional gRDA: one step for lists of tensors, in place, with the eager, multi-tensor and traced paths.

The update of ``shared/DESIGN.md`` ("The algorithm, exactly"), written from the paper (Chao, Wang, Xing, Cheng,
*Directional Pruning of Deep Neural Networks*, NeurIPS 2020); :class:`lightning_grda.optim.GRDA` holds the state and
the checks, as ``torch.optim.SGD`` does around ``torch.optim.sgd.sgd``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torch.nn.functional import softshrink

__all__ = ["grda", "threshold_increment"]


def threshold_increment(step: float, lr: float, c: float, mu: float) -> float:
    """The growth of the soft threshold at step ``step``: ``c * lr**(mu + 1/2) * (step**mu - (step - 1)**mu)``.

    Summed over steps ``1..n`` at a constant ``lr`` it telescopes to the paper's closed form
    ``c * sqrt(lr) * (n * lr)**mu``.

    Args:
        step: the step number ``n >= 1``.
        lr: the learning rate used at this step.
        c: the regularisation strength.
        mu: the growth exponent.

    Example:
        >>> round(threshold_increment(1, lr=0.01, c=1.0, mu=0.5), 12)  # c * sqrt(lr) * lr**mu at n = 1
        0.01
        >>> import math
        >>> n, lr, c, mu = 100, 0.1, 0.005, 0.55
        >>> total = sum(threshold_increment(k, lr, c, mu) for k in range(1, n + 1))
        >>> math.isclose(total, c * math.sqrt(lr) * (n * lr) ** mu)
        True
    """
    return c * lr ** (mu + 0.5) * (step**mu - (step - 1) ** mu)


def grda(
    params: list[Tensor],
    grads: list[Tensor],
    duals: list[Tensor],
    steps: list[Tensor],
    thresholds: list[Tensor],
    *,
    lr: float | Tensor,
    c: float,
    mu: float,
    foreach: bool | None = None,
    fused: bool = False,
) -> None:
    """Functional gRDA: one step for the given tensors, in place. See :class:`GRDA` for the algorithm.

    ``steps`` and ``thresholds`` are 0-dim float64 host tensors, one per parameter; ``duals`` are the dual averages.
    The threshold increments are computed on the host, so nothing here waits for an accelerator.

    Args:
        params: the parameters, updated in place.
        grads: their gradients.
        duals: their dual averages, updated in place.
        steps: their step counts, incremented in place.
        thresholds: their soft thresholds, updated in place.
        lr: the learning rate of this step.
        c: the regularisation strength.
        mu: the growth exponent.
        foreach: ``True``: multi-tensor kernels for the dual-average update; ``False``: the readable reference loop;
            ``None`` (default): multi-tensor kernels on accelerators, and on CPU a loop that thresholds each tensor
            right after its update, while its dual average is still in cache.
        fused: the whole step as one compiled graph (see :class:`GRDA`).
    """
    if not params:
        return
    if torch.compiler.is_compiling():  # traced: everything stays a tensor, nothing is read on the host
        _tensor_grda(params, grads, duals, steps, thresholds, lr, c, mu)
        return
    if fused:
        from lightning_grda.optim._fused import compiled_grda_

        compiled_grda_(params, grads, duals, steps, thresholds, lr, c, mu)
        return
    if isinstance(lr, Tensor):
        lr = lr.item()  # eager: a host read (free for a CPU tensor, one synchronisation for an accelerator's)
    torch._foreach_add_(steps, 1.0)
    new_thresholds = _advance_thresholds(steps, thresholds, lr, c, mu)
    if foreach or (foreach is None and params[0].device.type != "cpu"):
        _multi_tensor_grda(params, grads, duals, lr, new_thresholds)
    else:
        _single_tensor_grda(params, grads, duals, lr, new_thresholds)


def _tensor_grda(
    params: list[Tensor],
    grads: list[Tensor],
    duals: list[Tensor],
    steps: list[Tensor],
    thresholds: list[Tensor],
    lr: float | Tensor,
    c: float,
    mu: float,
) -> None:
    """The step written in tensors only, for ``torch.compile`` (one graph, horizontally fused by inductor).

    The step counts and thresholds stay 0-dim float64 tensors: the increment
    ``c * lr**(mu + 1/2) * (n**mu - (n - 1)**mu)`` is computed from them in float64 and added in float64, as the
    eager path does with Python floats. The soft threshold is written ``a - clamp(a, -T, T)``, which is
    ``softshrink(a, T)`` element for element (``a - T`` above ``T``, ``a + T`` below ``-T``, else 0) and takes a
    tensor ``T``. Only floating-point contraction (fused multiply-add) may differ from the eager path.
    """
    torch._foreach_add_(steps, 1.0)
    previous = torch._foreach_sub(steps, 1.0)
    increments = torch._foreach_sub(torch._foreach_pow(steps, mu), torch._foreach_pow(previous, mu))
    if isinstance(lr, Tensor):
        lr64 = lr.to(torch.float64)
        torch._foreach_mul_(increments, c * lr64 ** (mu + 0.5))
    else:
        torch._foreach_mul_(increments, c * lr ** (mu + 0.5))
    torch._foreach_add_(thresholds, increments)
    for p, g, a, t in zip(params, grads, duals, thresholds):
        a.sub_(g.to(a.dtype) * lr)
        p.copy_(a - a.clamp(-t, t))


def _advance_thresholds(steps: list[Tensor], thresholds: list[Tensor], lr: float, c: float, mu: float) -> list[float]:
    """Add each parameter's threshold increment in place; return the new thresholds as Python floats.

    Parameters of a group almost always share one step count, so the increment is computed once per distinct step.
    """
    counts = torch.stack(steps).tolist()
    increments: dict[float, float] = {}
    for n in counts:
        if n not in increments:
            increments[n] = threshold_increment(n, lr, c, mu)
    torch._foreach_add_(thresholds, [increments[n] for n in counts])
    return torch.stack(thresholds).tolist()


def _probe_softshrink_out() -> Callable[..., Tensor] | None:
    """The private ``softshrink`` binding that takes ``out=``, if this torch has one that works; else None.

    ``torch._C._nn.softshrink`` is what ``F.softshrink`` calls; it takes ``out=`` (``F.softshrink`` does not) and costs
    a third less per call than ``torch.ops.aten.softshrink.out``, which matters for the many small tensors. Being
    private, it may change or go: it is tried once here on a tiny tensor, and the public op is used without it.
    """
    op = getattr(getattr(torch._C, "_nn", None), "softshrink", None)
    if op is None:
        return None
    try:
        out = torch.empty(2)
        op(torch.tensor([-1.0, 0.25]), 0.5, out=out)
    except Exception:  # noqa: BLE001 - any failure of a private binding means: do not use it
        return None
    return op if out.tolist() == [-0.5, 0.0] else None


_softshrink_out = _probe_softshrink_out()


def _shrink_into(p: Tensor, a: Tensor, t: float) -> None:
    """``p = softshrink(a, t)``, written straight into ``p`` when it has the dual average's dtype (no temporary)."""
    if _softshrink_out is not None and p.dtype == a.dtype:
        _softshrink_out(a, t, out=p)
    else:
        p.copy_(softshrink(a, t))


def _single_tensor_grda(
    params: list[Tensor], grads: list[Tensor], duals: list[Tensor], lr: float, thresholds: list[float]
) -> None:
    """The readable loop, and the CPU default.

    Each tensor's soft threshold comes right after its update, while its dual average is still in cache.
    """
    for p, g, a, t in zip(params, grads, duals, thresholds):
        a.add_(g, alpha=-lr)
        _shrink_into(p, a, t)


def _multi_tensor_grda(
    params: list[Tensor], grads: list[Tensor], duals: list[Tensor], lr: float, thresholds: list[float]
) -> None:
    """The accelerator path: one multi-tensor add, then the soft threshold written straight into each parameter.

    ``softshrink``'s ``out=`` form writes the weight without a temporary when the parameter has the dual average's
    dtype; half-precision parameters take one temporary in float32 and a cast, as the precision requires.
    """
    same = [i for i, (p, a, g) in enumerate(zip(params, duals, grads)) if g.dtype == a.dtype and g.device == a.device]
    if len(same) == len(params):
        torch._foreach_add_(duals, grads, alpha=-lr)
    else:
        if same:
            torch._foreach_add_([duals[i] for i in same], [grads[i] for i in same], alpha=-lr)
        for i in sorted(set(range(len(params))) - set(same)):
            duals[i].add_(grads[i], alpha=-lr)
    for p, a, t in zip(params, duals, thresholds):
        _shrink_into(p, a, t)
