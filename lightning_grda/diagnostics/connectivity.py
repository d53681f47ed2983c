r"""Mode connectivity: a quadratic Bezier curve of low loss between two weight sets, and the straight line.

Garipov et al., *Loss Surfaces, Mode Connectivity, and Fast Ensembling of DNNs* (NeurIPS 2018), the method Chao et
al. (NeurIPS 2020) use to show that the gRDA and SGD minima lie in one valley: with endpoints ``w0``, ``w1`` and a
trained control point ``theta``,

.. math::
    \phi_\theta(t) = (1-t)^2 w_0 + 2t(1-t)\,\theta + t^2 w_1, \quad t \in [0, 1].

``theta`` starts at the midpoint and is trained by SGD on ``E_{t ~ U(0,1)} L(phi_theta(t))``, one ``t`` drawn per
batch. Only parameters lie on the curve; BatchNorm running statistics are recomputed from the training batches at
every evaluated point (they belong to no endpoint), as in Garipov et al. The straight line
``(1-t) w0 + t w1`` is evaluated the same way, for contrast: its loss barrier is what the curve removes.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from lightning_grda.checks import check_int, check_real
from lightning_grda.diagnostics._loss import ProgressFn, batches_to, load_params, loss_at, param_names, training_loss

__all__ = ["CurveResult", "bezier_point", "evaluate_path", "line_point", "train_bezier"]


def bezier_point(w0: Mapping[str, Tensor], theta: Mapping[str, Tensor], w1: Mapping[str, Tensor], t: float) -> dict:
    """``(1-t)^2 w0 + 2t(1-t) theta + t^2 w1`` for every name of ``theta``; exactly ``w0`` at 0 and ``w1`` at 1.

    Example:
        >>> import torch
        >>> bezier_point({"w": torch.tensor(0.0)}, {"w": torch.tensor(2.0)}, {"w": torch.tensor(0.0)}, 0.5)
        {'w': tensor(1.)}
    """
    if t == 0.0:
        return {k: w0[k] for k in theta}
    if t == 1.0:
        return {k: w1[k] for k in theta}
    a, b, c = (1 - t) ** 2, 2 * t * (1 - t), t**2
    return {k: a * w0[k] + b * theta[k] + c * w1[k] for k in theta}


def line_point(w0: Mapping[str, Tensor], w1: Mapping[str, Tensor], t: float, names: Iterable[str]) -> dict:
    """``(1-t) w0 + t w1`` for ``names``; exactly ``w0`` at 0 and ``w1`` at 1."""
    if t == 0.0:
        return {k: w0[k] for k in names}
    if t == 1.0:
        return {k: w1[k] for k in names}
    return {k: (1 - t) * w0[k] + t * w1[k] for k in names}


@dataclass
class CurveResult:
    """Training loss and accuracy along a path, at evenly spaced ``t``.

    Attributes:
        t: the points, ``0`` to ``1``.
        loss: the training loss at each point (the module's ``training_step``, averaged over the batches).
        accuracy: top-1 accuracy at each point, or ``None`` when batches are not ``(x, y)`` classification pairs.
    """

    t: list[float]
    loss: list[float]
    accuracy: list[float] | None = field(default=None)


def train_bezier(
    module: nn.Module,
    w0: Mapping[str, Tensor],
    w1: Mapping[str, Tensor],
    batches: Iterable[Any] | Sequence[Any],
    *,
    epochs: int = 5,
    lr: float = 0.05,
    momentum: float = 0.9,
    seed: int = 0,
    progress: ProgressFn | None = None,
) -> dict[str, Tensor]:
    """Train the control point ``theta`` of the Bezier curve from ``w0`` to ``w1``.

    Args:
        module: a LightningModule whose ``training_step`` returns the loss (not changed: a copy is trained, in
            ``train()`` mode, on the module's device).
        w0: the first endpoint (names to tensors: at least every trainable parameter).
        w1: the second endpoint.
        batches: the training batches, a sequence (reused each epoch) or a re-iterable loader.
        epochs: passes over ``batches``.
        lr: SGD learning rate for ``theta``.
        momentum: SGD momentum for ``theta``.
        seed: seed of the ``t`` draws.
        progress: called with the number of steps done after each step.

    Returns:
        ``theta``: the trained control point (names of trainable parameters to CPU tensors).
    """
    check_int("epochs", epochs, low=0)
    check_real("lr", lr, low=0.0, low_open=True)
    work = copy.deepcopy(module).train()
    device = next(work.parameters()).device
    names = param_names(work)
    a = {k: w0[k].detach().to(device, torch.float32) for k in names}
    b = {k: w1[k].detach().to(device, torch.float32) for k in names}
    theta = {k: ((a[k] + b[k]) / 2).clone().requires_grad_(True) for k in names}
    opt = torch.optim.SGD(list(theta.values()), lr=lr, momentum=momentum)
    gen = torch.Generator().manual_seed(seed)
    step = 0
    for _ in range(epochs):
        for batch in batches:
            t = float(torch.rand((), generator=gen))
            (batch,) = batches_to([batch], device)
            loss = loss_at(work, bezier_point(a, theta, b, t), batch)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            if progress is not None:
                progress(step)
    return {k: v.detach().cpu() for k, v in theta.items()}


def evaluate_path(
    module: nn.Module,
    point: Any,
    batches: Sequence[Any],
    *,
    points: int = 11,
    progress: ProgressFn | None = None,
) -> CurveResult:
    """Training loss and accuracy at ``points`` evenly spaced ``t`` along a path.

    Args:
        module: the LightningModule (not changed: a copy is evaluated).
        point: ``t -> {name: tensor}``, the parameters at ``t`` (e.g. ``lambda t: bezier_point(w0, theta, w1, t)``).
        batches: the training batches: BatchNorm statistics are recomputed on them at each point, then loss and
            accuracy are averaged over them (weighted by batch size) in ``eval()`` mode.
        points: the number of points, ``>= 2``.
        progress: called with the number of points done after each one.

    Returns:
        A :class:`CurveResult`.
    """
    check_int("points", points, low=2)
    work = copy.deepcopy(module)
    device = next(work.parameters()).device
    batches = batches_to(batches, device)
    ts = [i / (points - 1) for i in range(points)]
    losses: list[float] = []
    accs: list[float] | None = []
    for i, t in enumerate(ts):
        load_params(work, {k: v.to(device) for k, v in point(t).items()})
        _recompute_bn(work, batches)
        loss, acc = _loss_and_accuracy(work, batches)
        losses.append(loss)
        if accs is not None:
            accs = None if acc is None else [*accs, acc]
        if progress is not None:
            progress(i + 1)
    return CurveResult(t=ts, loss=losses, accuracy=accs)


_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


@torch.no_grad()
def _recompute_bn(module: nn.Module, batches: Sequence[Any]) -> None:
    """Reset every BatchNorm's running statistics and recompute them as the exact average over ``batches``."""
    bns = [m for m in module.modules() if isinstance(m, _BN) and m.track_running_stats]
    if not bns:
        return
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average: every batch counts equally
    module.train()
    for batch in batches:
        training_loss(module, batch)
    for m, mom in zip(bns, saved):
        m.momentum = mom


@torch.no_grad()
def _loss_and_accuracy(module: nn.Module, batches: Sequence[Any]) -> tuple[float, float | None]:
    module.eval()
    total = loss_sum = 0.0
    correct = 0.0
    classify = True
    for batch in batches:
        loss = training_loss(module, batch)
        n = _size(batch)
        loss_sum += float(loss) * n
        total += n
        if classify:
            hits = _hits(module, batch)
            if hits is None:
                classify = False
            else:
                correct += hits
    return loss_sum / total, (correct / total if classify else None)


def _size(batch: Any) -> int:
    first = batch[0] if isinstance(batch, (list, tuple)) else batch
    return len(first) if isinstance(first, Tensor) else 1


def _hits(module: nn.Module, batch: Any) -> float | None:
    """Correct top-1 predictions of ``module(x)`` on an ``(x, y)`` batch, or None if it is not a classification."""
    if not (isinstance(batch, (list, tuple)) and len(batch) == 2 and isinstance(batch[1], Tensor)):
        return None
    x, y = batch
    if y.is_floating_point() or y.dim() != 1:
        return None
    try:
        logits = module(x)
    except Exception:  # a module whose forward does not take x: no accuracy, the loss still counts
        return None
    if not isinstance(logits, Tensor) or logits.dim() != 2 or logits.shape[0] != y.shape[0]:
        return None
    return float((logits.argmax(1) == y).sum())
