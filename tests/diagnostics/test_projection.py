import pytest
import torch

from lightning_grda.diagnostics import hessian_eigenpairs, top_eigenspace_share


class Quadratic(torch.nn.Module):
    """loss = w^T A w / 2 with a known symmetric A: its Hessian is A."""

    def __init__(self, a: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("a", a)
        self.w = torch.nn.Parameter(torch.zeros(a.shape[0]))

    def training_step(self, batch, batch_idx):
        return 0.5 * self.w @ self.a @ self.w


def test_share_on_quadratic_with_known_hessian():
    g = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(12, 12, generator=g, dtype=torch.float64))
    values = torch.tensor([50.0, 20.0, 10.0, 5.0] + [1.0 / (i + 1) for i in range(8)], dtype=torch.float64)
    a = (q * values) @ q.T
    coeffs = torch.arange(1.0, 13.0, dtype=torch.float64)  # delta's coordinates in the eigenbasis
    delta = q @ coeffs
    expected = coeffs.square().cumsum(0)[:4] / coeffs.square().sum()

    eig = hessian_eigenpairs(Quadratic(a.float()), [torch.zeros(1)], k=4, tol=1e-10)
    torch.testing.assert_close(eig.eigenvalues.double(), values[:4], rtol=1e-4, atol=0)
    share = top_eigenspace_share(delta.float(), eig.eigenvectors)
    torch.testing.assert_close(share, expected, rtol=1e-4, atol=1e-6)
    # against the exact eigenvectors too
    torch.testing.assert_close(top_eigenspace_share(delta, q[:, :4]), expected)


def test_share_is_sign_invariant_and_bounded():
    v = torch.eye(5)[:, :3]
    delta = torch.tensor([1.0, -2.0, 0.0, 2.0, 4.0])
    share = top_eigenspace_share(delta, v)
    torch.testing.assert_close(share, torch.tensor([1, 5, 5], dtype=torch.float64) / 25)
    torch.testing.assert_close(top_eigenspace_share(delta, -v), share)


def test_bad_input():
    with pytest.raises(ValueError, match=r"Invalid eigenvectors: 'shape \(4, 2\)'"):
        top_eigenspace_share(torch.ones(5), torch.ones(4, 2))
    with pytest.raises(ValueError, match="Invalid delta: 'a zero vector'"):
        top_eigenspace_share(torch.zeros(5), torch.eye(5)[:, :2])
