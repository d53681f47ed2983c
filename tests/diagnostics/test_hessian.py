import copy

import pytest
import torch

from lightning_grda.diagnostics import hessian_eigenpairs, hessian_vector_product
from tests.diagnostics.tiny import NoLoss, TinyClassifier, batches


def dense_hessian(module, data):
    """The float64 Hessian of the batch-size-weighted mean cross-entropy, from torch.autograd.functional.hessian."""
    module = copy.deepcopy(module).double().eval()
    data = [(x.double(), y) for x, y in data]
    names = [n for n, _ in module.named_parameters()]
    shapes = [p.shape for p in module.parameters()]
    flat = torch.cat([p.detach().reshape(-1) for p in module.parameters()])
    total = sum(len(b[0]) for b in data)

    def loss(vec):
        parts = torch.split(vec, [s.numel() for s in shapes])
        params = {n: p.view(s) for n, p, s in zip(names, parts, shapes)}
        return sum(
            len(x) / total * torch.nn.functional.cross_entropy(torch.func.functional_call(module, params, (x,)), y)
            for x, y in data
        )

    return torch.autograd.functional.hessian(loss, flat.double())


def test_eigenvalues_match_dense_hessian():
    torch.manual_seed(0)
    module = TinyClassifier()
    dense = dense_hessian(module, batches())
    expected = torch.linalg.eigvalsh(dense).flip(0)[:4]
    eig = hessian_eigenpairs(module, batches(), k=4, tol=1e-8)
    torch.testing.assert_close(eig.eigenvalues.double(), expected, rtol=1e-3, atol=1e-4)
    # orthonormal eigenvectors, each satisfying H u = lambda u
    v = eig.eigenvectors.double()
    torch.testing.assert_close(v.T @ v, torch.eye(4, dtype=torch.float64), atol=1e-4, rtol=0)
    torch.testing.assert_close(dense @ v, v * eig.eigenvalues.double(), atol=1e-3, rtol=1e-3)


def test_hvp_matches_dense_and_module_unchanged():
    torch.manual_seed(0)
    module = TinyClassifier().eval()
    data = batches()
    before = {k: v.clone() for k, v in module.state_dict().items()}
    dense = dense_hessian(module, data)
    v = torch.randn(dense.shape[0])
    torch.testing.assert_close(
        hessian_vector_product(module, data, v).double(), dense @ v.double(), atol=1e-4, rtol=1e-4
    )
    hessian_eigenpairs(module, data, k=1)
    for k, value in module.state_dict().items():
        assert torch.equal(value, before[k])


def test_k_not_below_parameter_count():
    module = TinyClassifier()
    n = sum(p.numel() for p in module.parameters())
    with pytest.raises(ValueError, match=rf"Invalid k: {n}; expected an int < {n}"):
        hessian_eigenpairs(module, batches(), k=n)


def test_training_step_without_loss():
    with pytest.raises(ValueError, match="training_step returned NoneType, not the loss"):
        hessian_eigenpairs(NoLoss(), batches(), k=1)
