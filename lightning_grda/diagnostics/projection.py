r"""The share of a weight difference on the Hessian's top eigenspace.

Chao et al. (NeurIPS 2020, section 4): ``delta = w_gRDA - w_SGD`` has almost no weight on the top eigenvectors of
the Hessian at ``w_SGD`` (about 1e-3 of ``||delta||^2`` on the top 10, falling to 1e-5 later in training): gRDA moves
along flat directions. With orthonormal eigenvectors ``u_1, ..., u_K`` in decreasing eigenvalue order,

.. math::
    \text{share}_k = \frac{\|P_k \delta\|^2}{\|\delta\|^2} = \frac{\sum_{i \le k} (u_i^\top \delta)^2}
    {\|\delta\|^2}, \quad k = 1, \dots, K.
"""

from __future__ import annotations

from torch import Tensor

from lightning_grda.checks import invalid

__all__ = ["top_eigenspace_share"]


def top_eigenspace_share(delta: Tensor, eigenvectors: Tensor) -> Tensor:
    """``||P_k delta||^2 / ||delta||^2`` for ``k = 1..K``: the share of ``delta`` on the top-k eigenvectors.

    Args:
        delta: shape ``(N,)``, e.g. the flattened ``w_gRDA - w_SGD``.
        eigenvectors: shape ``(N, K)``, orthonormal columns in decreasing eigenvalue order.

    Returns:
        Shape ``(K,)``, nondecreasing, in ``[0, 1]`` (float64).

    Raises:
        ValueError: shapes that do not match, or ``delta`` zero (identical weights have no direction).

    Example:
        >>> import torch
        >>> top_eigenspace_share(torch.tensor([3.0, 4.0, 0.0]), torch.eye(3)[:, :2])
        tensor([0.3600, 1.0000], dtype=torch.float64)
    """
    if delta.dim() != 1 or eigenvectors.dim() != 2 or eigenvectors.shape[0] != delta.shape[0]:
        raise invalid(
            "eigenvectors", f"shape {tuple(eigenvectors.shape)}", f"shape (N, K) with N = {tuple(delta.shape)} of delta"
        )
    d = delta.detach().double()
    total = float(d.square().sum())
    if total == 0.0:
        raise invalid("delta", "a zero vector", "two different weight sets (identical weights have no direction)")
    coeffs = eigenvectors.detach().double().to(d.device).T @ d
    return (coeffs.square().cumsum(0) / total).cpu()
