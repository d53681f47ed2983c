"""The update itself: exact to the paper's rule on every path (readable loop, multi-tensor, fused, compiled)."""

import copy
import math

import pytest
import torch
from torch import nn

from lightning_grda.optim import functional
from lightning_grda.optim.grda import GRDA, threshold_increment
from tests.optim.grda_reference import random_grads, reference, run_grda, step_side_by_side


@pytest.mark.parametrize("foreach", [None, True, False])
def test_closed_form_at_constant_lr(foreach):
    n, lr, c, mu = 50, 0.1, 0.5, 0.6
    w0 = torch.randn(40, 30, dtype=torch.float64)
    grads = random_grads(w0.shape, n)
    p = w0.clone().requires_grad_()
    opt = run_grda(p, grads, [lr] * n, c=c, mu=mu, foreach=foreach)
    t_closed = c * math.sqrt(lr) * (n * lr) ** mu
    a = w0 - lr * torch.stack(grads).sum(0)
    expected = torch.sign(a) * torch.clamp(a.abs() - t_closed, min=0)
    torch.testing.assert_close(p.detach(), expected, rtol=0, atol=1e-12)
    assert opt.state[p]["threshold"].item() == pytest.approx(t_closed, rel=1e-12)
    assert opt.state[p]["step"].item() == n
    assert (p == 0).float().mean() > 0.1  # the threshold really prunes something here


@pytest.mark.parametrize("foreach", [None, True, False])
def test_matches_reference_loop_across_lr_change(foreach):
    n, c, mu = 60, 0.05, 0.55
    lrs = [0.1] * 30 + [0.01] * 30
    w0 = torch.randn(25, dtype=torch.float64)
    grads = random_grads(w0.shape, n, seed=1)
    p = w0.clone().requires_grad_()
    opt = run_grda(p, grads, lrs, c=c, mu=mu, foreach=foreach)
    w_ref, a_ref, ts = reference(w0, grads, lrs, c, mu)
    torch.testing.assert_close(p.detach(), w_ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(opt.state[p]["dual"], a_ref, rtol=0, atol=1e-12)
    assert opt.state[p]["threshold"].item() == pytest.approx(ts[-1], rel=1e-12)
    # After the drop the threshold keeps growing, more slowly: no jump up or down.
    assert ts[30] > ts[29]
    assert ts[30] - ts[29] < ts[29] - ts[28]
    # The closed form recomputed with the new lr (the Keras behaviour) would jump down; we do not follow it.
    assert ts[-1] > c * math.sqrt(0.01) * (n * 0.01) ** mu


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("foreach", [None, True, False])
def test_c_zero_is_sgd_bit_for_bit(dtype, foreach):
    torch.manual_seed(0)
    a = nn.Sequential(nn.Linear(10, 20), nn.Tanh(), nn.Linear(20, 3)).to(dtype)
    b = copy.deepcopy(a)
    sgd = torch.optim.SGD(a.parameters(), lr=0.05)
    grda = GRDA(b.parameters(), lr=0.05, c=0.0, mu=0.7, foreach=foreach)
    for _ in range(25):
        x = torch.randn(16, 10, dtype=dtype)
        for model, opt in ((a, sgd), (b, grda)):
            opt.zero_grad()
            model(x).square().mean().backward()
            opt.step()
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)


@pytest.mark.parametrize("foreach", [None, True])
def test_fast_paths_equal_readable_loop_float64(foreach):
    torch.manual_seed(0)
    shapes = [(7, 5), (5,), (3, 2, 4, 4), (1,)]
    lrs = [0.1] * 10 + [0.02] * 10
    ref = [torch.randn(s, dtype=torch.float64, requires_grad=True) for s in shapes]
    fast = [p.detach().clone().requires_grad_() for p in ref]
    o_ref = GRDA(ref, lr=0.1, c=0.03, mu=0.51, foreach=False)
    o_fast = GRDA(fast, lr=0.1, c=0.03, mu=0.51, foreach=foreach)
    step_side_by_side(o_ref, ref, o_fast, fast, lrs)
    for p, q in zip(ref, fast):
        assert torch.equal(p, q)
        assert torch.equal(o_ref.state[p]["dual"], o_fast.state[q]["dual"])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_private_softshrink_out_and_its_public_fallback_agree(monkeypatch, dtype):
    grda_module = functional

    assert grda_module._softshrink_out is not None  # this torch has the private binding, and it passed the probe
    results = []
    for private in (True, False):
        if not private:
            monkeypatch.setattr(grda_module, "_softshrink_out", None)
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 2)).to(dtype)
        opt = GRDA(model.parameters(), lr=0.1, c=0.05, mu=0.6, foreach=False)
        for _ in range(5):
            opt.zero_grad()
            model(torch.randn(4, 6, dtype=dtype)).square().mean().backward()
            opt.step()
        results.append([p.detach().clone() for p in model.parameters()])
    for a, b in zip(*results):
        assert torch.equal(a, b)


def test_a_broken_private_softshrink_falls_back_to_the_public_op(monkeypatch):
    grda_module = functional

    def broken(*args, **kwargs):
        raise TypeError("no out= here")

    monkeypatch.setattr(torch._C._nn, "softshrink", broken)
    assert grda_module._probe_softshrink_out() is None
    monkeypatch.delattr(torch._C._nn, "softshrink")
    assert grda_module._probe_softshrink_out() is None


def test_threshold_increment_telescopes_to_closed_form():
    lr, c, mu = 0.3, 0.004, 0.501
    total = math.fsum(threshold_increment(k, lr, c, mu) for k in range(1, 1001))
    assert total == pytest.approx(c * math.sqrt(lr) * (1000 * lr) ** mu, rel=1e-12)


def test_loss_goes_down_and_sparsity_appears_on_a_sparse_regression():
    torch.manual_seed(0)
    true_w = torch.zeros(50)
    true_w[:5] = torch.tensor([2.0, -1.5, 1.0, 3.0, -2.5])
    x = torch.randn(512, 50)
    y = x @ true_w + 0.01 * torch.randn(512)
    model = nn.Linear(50, 1, bias=False)
    opt = GRDA(model.parameters(), lr=0.05, c=0.05, mu=0.6)
    losses = []
    for _ in range(300):
        opt.zero_grad()
        loss = (model(x).squeeze(1) - y).square().mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.05 * losses[0]
    w = model.weight.detach().squeeze(0)
    assert (w[5:] == 0).float().mean() >= 0.9  # the irrelevant inputs are pruned to exact zeros
    assert (w[:5] != 0).all()


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_fused_path_matches_readable_loop(dtype):
    torch.manual_seed(0)
    shapes = [(9, 4), (4,), (2, 3, 3, 3)]
    ref = [torch.randn(s).to(dtype).requires_grad_() for s in shapes]
    fused = [p.detach().clone().requires_grad_() for p in ref]
    o_ref = GRDA(ref, lr=0.1, c=0.03, mu=0.55, foreach=False)
    o_fused = GRDA(fused, lr=0.1, c=0.03, mu=0.55, fused=True)
    step_side_by_side(o_ref, ref, o_fused, fused, [0.1] * 5 + [0.01] * 5)
    tol = {torch.float64: 1e-12, torch.float32: 1e-6, torch.bfloat16: 1e-2}[dtype]
    for p, q in zip(ref, fused):
        torch.testing.assert_close(q, p, rtol=0, atol=tol)
        torch.testing.assert_close(o_fused.state[q]["dual"], o_ref.state[p]["dual"], rtol=0, atol=tol)
        torch.testing.assert_close(o_fused.state[q]["threshold"], o_ref.state[p]["threshold"], rtol=1e-15, atol=0)
        assert o_fused.state[q]["step"].item() == 10


@pytest.mark.slow
def test_compiled_step_compiles_at_most_twice_over_an_lr_change_and_a_state_dict_round_trip():
    from torch._dynamo.utils import counters

    torch.manual_seed(0)
    compiled = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 2)).double()
    eager = copy.deepcopy(compiled)
    o_comp = GRDA(compiled.parameters(), lr=0.1, c=0.02, mu=0.6, nonfinite="ignore")
    o_eager = GRDA(eager.parameters(), lr=0.1, c=0.02, mu=0.6, nonfinite="ignore")
    torch._dynamo.reset()
    counters.clear()
    step = torch.compile(o_comp.step)
    for i in range(100):
        x = torch.randn(4, 8, dtype=torch.float64)
        for model, opt, run in ((compiled, o_comp, step), (eager, o_eager, o_eager.step)):
            opt.zero_grad()
            model(x).square().mean().backward()
            run()
        if i == 40:  # the paper's one-time drop
            o_comp.param_groups[0]["lr"] = o_eager.param_groups[0]["lr"] = 0.01
        if i == 60:
            o_comp.load_state_dict(copy.deepcopy(o_comp.state_dict()))
    assert counters["stats"]["unique_graphs"] <= 2  # the first step, and the new float lr
    assert not counters["graph_break"]
    for p, q in zip(eager.parameters(), compiled.parameters()):
        torch.testing.assert_close(q, p, rtol=0, atol=1e-12)
        torch.testing.assert_close(o_comp.state[q]["threshold"], o_eager.state[p]["threshold"], rtol=1e-15, atol=0)
        assert o_comp.state[q]["step"].item() == 100


@pytest.mark.slow
def test_torch_compile_of_a_training_step():
    torch.manual_seed(0)
    eager = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
    compiled = copy.deepcopy(eager)
    o_eager = GRDA(eager.parameters(), lr=0.1, c=0.02)
    o_comp = GRDA(compiled.parameters(), lr=0.1, c=0.02)

    def train_step(model, opt, x, y):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    step = torch.compile(train_step)
    for _ in range(4):
        x, y = torch.randn(8, 8), torch.randint(0, 2, (8,))
        train_step(eager, o_eager, x, y)
        step(compiled, o_comp, x, y)
    for p, q in zip(eager.parameters(), compiled.parameters()):
        torch.testing.assert_close(q, p, rtol=1e-5, atol=1e-6)
    assert o_comp.state[compiled[0].weight]["step"].item() == 4
