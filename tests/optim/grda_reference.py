"""The paper's update as a plain loop, and small drivers shared by the optimizer's tests."""

import torch

from lightning_grda.optim.grda import GRDA


def reference(w0, grads, lrs, c, mu):
    """The algorithm of DESIGN.md as a plain loop, written independently of the optimizer (sign * clamp)."""
    a, t = w0.clone(), 0.0
    ts = []
    for n, (g, lr) in enumerate(zip(grads, lrs), start=1):
        a = a - lr * g
        t = t + c * lr ** (mu + 0.5) * (n**mu - (n - 1) ** mu)
        ts.append(t)
    return torch.sign(a) * torch.clamp(a.abs() - t, min=0), a, ts


def run_grda(p, grads, lrs, **kwargs):
    """Feed ``grads`` to ``GRDA`` over the single parameter ``p``, with learning rates ``lrs``."""
    opt = GRDA([p], lr=lrs[0], **kwargs)
    for g, lr in zip(grads, lrs):
        opt.param_groups[0]["lr"] = lr
        p.grad = g.clone()
        opt.step()
    return opt


def random_grads(shape, n, dtype=torch.float64, seed=0, scale=1.0):
    gen = torch.Generator().manual_seed(seed)
    return [scale * torch.randn(shape, generator=gen, dtype=dtype) for _ in range(n)]


def step_side_by_side(opt_a, params_a, opt_b, params_b, lrs):
    """Step two optimizers over copies of the same parameters with the same random gradients, one lr per step."""
    for lr in lrs:
        for opt in (opt_a, opt_b):
            opt.param_groups[0]["lr"] = lr
        for p, q in zip(params_a, params_b):
            g = torch.randn_like(p)
            p.grad, q.grad = g, g.clone()
        opt_a.step()
        opt_b.step()
