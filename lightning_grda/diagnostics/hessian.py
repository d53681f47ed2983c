"""The top eigenpairs of the training-loss Hessian, by Lanczos iterations on Hessian-vector products.

The Hessian of the training loss ``L(w) = sum_b n_b L_b(w) / sum_b n_b`` over a fixed list of batches is never
formed: each Lanczos step needs one product ``H v``, computed by double backward (``d/dw <grad L_b(w), v>``), batch by
batch. The Lanczos iterations are scipy's :func:`scipy.sparse.linalg.eigsh` (ARPACK's implicitly restarted Lanczos)
on a :class:`scipy.sparse.linalg.LinearOperator`: the maintained standard, already pulled in by scikit-learn, and
free of the stale pins of ``hessian-eigenthings``. The products run in float32 on the module's device (CPU or GPU);
the Lanczos vectors are float64 on the CPU.

The module is evaluated in ``eval()`` mode: BatchNorm uses its running statistics and dropout is off, so ``H`` is the
Hessian of one deterministic function (as in PyHessian, Yao et al. 2020). Reference: Chao et al., *Directional Pruning
of Deep Neural Networks*, NeurIPS 2020, section 4 (the share of ``w_gRDA - w_SGD`` on the top eigenvectors).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from lightning_grda.checks import check_int, invalid
from lightning_grda.diagnostics._loss import ProgressFn, batches_to, param_names, training_loss

__all__ = ["HessianEigen", "hessian_eigenpairs", "hessian_vector_product"]


@dataclass
class HessianEigen:
    """The top-k eigenpairs of a Hessian.

    Attributes:
        eigenvalues: shape ``(k,)``, in decreasing order.
        eigenvectors: shape ``(N, k)``, orthonormal columns over the flattened trainable parameters (in
            ``named_parameters`` order), column ``i`` for ``eigenvalues[i]``.
        names: the parameter names the rows follow.
        products: the number of Hessian-vector products the Lanczos iterations took.
    """

    eigenvalues: Tensor
    eigenvectors: Tensor
    names: list[str]
    products: int


def hessian_vector_product(module: nn.Module, batches: Sequence[Any], vector: Tensor) -> Tensor:
    """``H v`` for the training loss of ``module`` averaged over ``batches`` (weighted by batch size).

    Args:
        module: a LightningModule (or any module with ``training_step(batch, batch_idx)`` returning the loss), already
            on its device and in the mode wanted.
        batches: the fixed batches, on the module's device.
        vector: shape ``(N,)``, over the flattened trainable parameters.

    Returns:
        ``H v``, shape ``(N,)``, float32.
    """
    params = [p for p in module.parameters() if p.requires_grad]
    sizes = [_batch_size(b) for b in batches]
    total = float(sum(sizes))
    vs = torch.split(vector.to(params[0].device, torch.float32), [p.numel() for p in params])
    out = torch.zeros_like(vector, dtype=torch.float32, device=params[0].device)
    for batch, size in zip(batches, sizes):
        loss = training_loss(module, batch)
        grads = torch.autograd.grad(loss, params, create_graph=True)
        dot = sum((g * v.view_as(g)).sum() for g, v in zip(grads, vs))
        hv = torch.autograd.grad(dot, params, allow_unused=True)
        out += (size / total) * torch.cat(
            [(h if h is not None else torch.zeros_like(p)).reshape(-1) for h, p in zip(hv, params)]
        )
    return out


def hessian_eigenpairs(
    module: nn.Module,
    batches: Sequence[Any],
    k: int = 10,
    *,
    tol: float = 1e-4,
    max_products: int | None = None,
    seed: int = 0,
    progress: ProgressFn | None = None,
) -> HessianEigen:
    """The ``k`` largest (algebraic) eigenvalues of the training-loss Hessian and their eigenvectors.

    Args:
        module: a LightningModule whose ``training_step`` returns the loss; it is not changed (a copy is evaluated,
            in ``eval()`` mode, on the module's device).
        batches: the fixed batches the loss is averaged over.
        k: how many eigenpairs, ``1 <= k < N`` (``N`` the number of trainable parameters).
        tol: the relative accuracy of the eigenvalues (ARPACK's ``tol``).
        max_products: a cap on Lanczos iterations (ARPACK's ``maxiter``); default ``max(300, 20 k)``.
        seed: seed of the starting vector, so runs repeat exactly.
        progress: called with the number of products done after each one.

    Returns:
        A :class:`HessianEigen`.

    Raises:
        ValueError: ``k`` out of range, no batches, or a ``training_step`` that returns no loss.

    Example:
        >>> import torch
        >>> class Quadratic(torch.nn.Module):  # loss = w^T diag(1, 2, 3) w / 2: eigenvalues 3, 2, 1
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.w = torch.nn.Parameter(torch.ones(3))
        ...     def training_step(self, batch, batch_idx):
        ...         return 0.5 * (batch * self.w**2).sum()
        >>> hessian_eigenpairs(Quadratic(), [torch.tensor([1.0, 2.0, 3.0])], k=2).eigenvalues
        tensor([3., 2.])
    """
    names = param_names(module)
    n = sum(p.numel() for p in module.parameters() if p.requires_grad)
    check_int("k", k, low=1)
    if k >= n:
        raise invalid("k", k, f"an int < {n}, the number of trainable parameters (Lanczos needs k < N)")
    if not batches:
        raise invalid("batches", batches, "at least one batch")
    from scipy.sparse.linalg import LinearOperator, eigsh

    work = copy.deepcopy(module).eval()
    device = next(work.parameters()).device
    batches = batches_to(batches, device)
    training_loss(work, batches[0])  # fail before any Lanczos work on a module that returns no loss
    count = 0

    def matvec(v: np.ndarray) -> np.ndarray:
        nonlocal count
        hv = hessian_vector_product(work, batches, torch.from_numpy(np.asarray(v, dtype=np.float32).reshape(-1)))
        count += 1
        if progress is not None:
            progress(count)
        return hv.double().cpu().numpy()

    op = LinearOperator((n, n), matvec=matvec, dtype=np.float64)
    v0 = np.random.default_rng(seed).standard_normal(n)
    values, vectors = eigsh(op, k=k, which="LA", tol=tol, v0=v0, maxiter=max_products or max(300, 20 * k))
    order = np.argsort(values)[::-1]
    return HessianEigen(
        eigenvalues=torch.from_numpy(values[order].copy()).float(),
        eigenvectors=torch.from_numpy(vectors[:, order].copy()).float(),
        names=names,
        products=count,
    )


def _batch_size(batch: Any) -> int:
    if isinstance(batch, Tensor):
        return len(batch)
    if isinstance(batch, (list, tuple)) and batch:
        return _batch_size(batch[0])
    if isinstance(batch, dict) and batch:
        return _batch_size(next(iter(batch.values())))
    return 1
