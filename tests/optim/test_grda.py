import copy
import io
import math
import re
import sys
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from lightning_grda.optim.grda import _SUM_ONE_BY_ONE, GRDA, threshold_increment
from tests.helpers import join_gloo, spawn_two_ranks


def reference(w0, grads, lrs, c, mu):
    """The algorithm of DESIGN.md as a plain loop, written independently of the optimizer (sign * clamp)."""
    a, t = w0.clone(), 0.0
    ts = []
    for n, (g, lr) in enumerate(zip(grads, lrs), start=1):
        a = a - lr * g
        t = t + c * lr ** (mu + 0.5) * (n**mu - (n - 1) ** mu)
        ts.append(t)
    return torch.sign(a) * torch.clamp(a.abs() - t, min=0), a, ts


def run(p, grads, lrs, **kwargs):
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


@pytest.mark.parametrize("foreach", [None, True, False])
def test_closed_form_at_constant_lr(foreach):
    n, lr, c, mu = 50, 0.1, 0.5, 0.6
    w0 = torch.randn(40, 30, dtype=torch.float64)
    grads = random_grads(w0.shape, n)
    p = w0.clone().requires_grad_()
    opt = run(p, grads, [lr] * n, c=c, mu=mu, foreach=foreach)
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
    opt = run(p, grads, lrs, c=c, mu=mu, foreach=foreach)
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
    for _i, lr in enumerate(lrs):
        for o in (o_ref, o_fast):
            o.param_groups[0]["lr"] = lr
        for p, q in zip(ref, fast):
            g = torch.randn_like(p)
            p.grad, q.grad = g, g.clone()
        o_ref.step()
        o_fast.step()
    for p, q in zip(ref, fast):
        assert torch.equal(p, q)
        assert torch.equal(o_ref.state[p]["dual"], o_fast.state[q]["dual"])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_private_softshrink_out_and_its_public_fallback_agree(monkeypatch, dtype):
    grda_module = sys.modules[GRDA.__module__]

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
    grda_module = sys.modules[GRDA.__module__]

    def broken(*args, **kwargs):
        raise TypeError("no out= here")

    monkeypatch.setattr(torch._C._nn, "softshrink", broken)
    assert grda_module._probe_softshrink_out() is None
    monkeypatch.delattr(torch._C._nn, "softshrink")
    assert grda_module._probe_softshrink_out() is None


def test_dual_average_starts_at_the_weights_of_the_first_step():
    """Fine-tuning: weights loaded before the first step are where the dual average starts."""
    model = nn.Linear(6, 4)
    opt = GRDA(model.parameters(), lr=0.1, c=0.01)
    pretrained = torch.randn(4, 6)
    with torch.no_grad():
        model.weight.copy_(pretrained)
    model(torch.randn(3, 6)).sum().backward()
    g = model.weight.grad.clone()
    opt.step()
    assert torch.equal(opt.state[model.weight]["dual"], pretrained.add(g, alpha=-0.1))


def test_parameters_without_gradients_are_untouched():
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))
    model[0].requires_grad_(False)
    frozen = [p.detach().clone() for p in model[0].parameters()]
    opt = GRDA(model.parameters(), lr=0.5, c=0.5, mu=0.6)
    model(torch.randn(8, 4)).sum().backward()
    opt.step()
    for p, before in zip(model[0].parameters(), frozen):
        assert torch.equal(p, before)
        assert p not in opt.state or len(opt.state[p]) == 0
    assert all(opt.state[p]["step"].item() == 1 for p in model[1].parameters())


@pytest.mark.parametrize("fused", [False, pytest.param(True, marks=pytest.mark.slow)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_updates_in_place_keeping_dtype_storage_and_memory_format(dtype, fused):
    conv = nn.Conv2d(3, 8, 3).to(dtype=dtype, memory_format=torch.channels_last)
    ptrs = {n: p.data_ptr() for n, p in conv.named_parameters()}
    opt = GRDA(conv.parameters(), lr=0.1, c=0.01, fused=fused)
    for _ in range(2):
        opt.zero_grad()
        conv(torch.randn(2, 3, 8, 8, dtype=dtype).to(memory_format=torch.channels_last)).sum().backward()
        opt.step()
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert opt.state[conv.weight]["dual"].is_contiguous(memory_format=torch.channels_last)
    for n, p in conv.named_parameters():
        assert p.dtype == dtype
        assert p.data_ptr() == ptrs[n]
        assert p.device.type == "cpu"


def test_state_is_one_buffer_per_parameter_plus_host_scalars():
    model = nn.Linear(5, 3).bfloat16()
    opt = GRDA(model.parameters())
    model(torch.randn(2, 5, dtype=torch.bfloat16)).sum().backward()
    opt.step()
    for p in model.parameters():
        state = opt.state[p]
        assert set(state) == {"step", "threshold", "dual"}
        assert state["dual"].shape == p.shape
        assert state["dual"].dtype == torch.float32
        for key in ("step", "threshold"):
            assert state[key].dim() == 0
            assert state[key].device.type == "cpu"
            assert state[key].dtype == torch.float64


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_does_not_stall(dtype):
    """lr * grad = 1e-4 is far below bf16/fp16 resolution at 1.0; SGD stalls, gRDA's float32 dual does not."""
    p = torch.ones(16, dtype=dtype, requires_grad=True)
    q = torch.ones(16, dtype=dtype, requires_grad=True)
    grda, sgd = GRDA([p], lr=0.1, c=0.0), torch.optim.SGD([q], lr=0.1)
    for _ in range(200):
        p.grad = torch.full_like(p, 1e-3)
        q.grad = torch.full_like(q, 1e-3)
        grda.step()
        sgd.step()
    assert torch.equal(q, torch.ones_like(q))  # the stall gRDA must not have
    torch.testing.assert_close(p.float(), torch.full((16,), 0.98), rtol=0, atol=4e-3)
    torch.testing.assert_close(grda.state[p]["dual"], torch.full((16,), 0.98), rtol=0, atol=1e-5)


def roundtrip(opt_factory, params_factory, steps_before, steps_after, lr_after=None, dtype=torch.float32):
    """Uninterrupted run vs. save -> torch.save/load -> load_state_dict into fresh objects -> continue."""
    torch.manual_seed(0)
    grads = random_grads((6, 5), steps_before + steps_after, dtype=torch.float32, seed=3)
    p_full = params_factory()
    p_half = p_full.detach().clone().requires_grad_()
    o_full, o_half = opt_factory([p_full]), opt_factory([p_half])

    def do(p, o, gs):
        for g in gs:
            p.grad = g.to(dtype)
            o.step()

    do(p_full, o_full, grads[:steps_before])
    do(p_half, o_half, grads[:steps_before])
    if lr_after is not None:
        o_full.param_groups[0]["lr"] = o_half.param_groups[0]["lr"] = lr_after
    buf = io.BytesIO()
    torch.save({"p": p_half.detach(), "opt": o_half.state_dict()}, buf)
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)
    p_new = saved["p"].clone().requires_grad_()
    o_new = opt_factory([p_new])
    o_new.load_state_dict(saved["opt"])
    do(p_full, o_full, grads[steps_before:])
    do(p_new, o_new, grads[steps_before:])
    return p_full, o_full, p_new, o_new


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_state_dict_roundtrip_continues_exactly(dtype):
    def params():
        return torch.randn(6, 5).to(dtype).requires_grad_()

    p_full, o_full, p_new, o_new = roundtrip(
        lambda ps: GRDA(ps, lr=0.1, c=0.05, mu=0.6), params, 7, 9, lr_after=0.01, dtype=dtype
    )
    assert torch.equal(p_full, p_new)
    s_full, s_new = o_full.state[p_full], o_new.state[p_new]
    assert s_new["dual"].dtype == torch.float32  # not cast to the parameter's dtype on load
    assert torch.equal(s_full["dual"], s_new["dual"])
    assert s_new["step"].item() == 16
    assert s_new["step"].dtype == torch.float64
    assert s_full["threshold"].item() == s_new["threshold"].item()
    assert o_new.param_groups[0]["lr"] == 0.01


def test_invalid_hyperparameters_name_the_argument_and_value():
    p = [torch.zeros(2, requires_grad=True)]
    with pytest.raises(ValueError, match=r"Invalid lr: -0\.1; expected a finite real number >= 0"):
        GRDA(p, lr=-0.1)
    with pytest.raises(ValueError, match=r"Invalid lr: nan"):
        GRDA(p, lr=float("nan"))
    with pytest.raises(ValueError, match=r"Invalid c: -1"):
        GRDA(p, c=-1)
    with pytest.raises(ValueError, match=r"Invalid mu: 0"):
        GRDA(p, mu=0)
    with pytest.raises(ValueError, match=r"Invalid mu: -0\.5"):
        GRDA(p, mu=-0.5)
    with pytest.raises(ValueError, match=r"Invalid nonfinite: 'warn'"):
        GRDA(p, nonfinite="warn")
    with pytest.raises(ValueError, match=r"Invalid foreach: True with fused=True"):
        GRDA(p, foreach=True, fused=True)
    with pytest.raises(ValueError, match=r"Invalid c: -0\.2"):
        GRDA([{"params": p}, {"params": [torch.zeros(1, requires_grad=True)], "c": -0.2}])


def test_hyperparameters_refuse_bools_and_accept_numpy_and_0dim_tensors():
    p = [torch.zeros(2, requires_grad=True)]
    with pytest.raises(ValueError, match=r"Invalid lr: True"):
        GRDA(p, lr=True)
    with pytest.raises(ValueError, match=r"Invalid c: True"):
        GRDA(p, c=True)
    with pytest.raises(ValueError, match=r"Invalid mu: False"):
        GRDA(p, mu=False)
    for value in (np.float32(0.1), np.float64(0.1), torch.tensor(0.1)):
        opt = GRDA(p, lr=value, c=np.float32(0.01), mu=np.float64(0.6))
        p[0].grad = torch.ones(2)
        opt.step()


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1.0, True])
@pytest.mark.parametrize("key", ["lr", "c", "mu"])
def test_a_bad_value_set_after_construction_changes_nothing(key, bad):
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    opt = GRDA(model.parameters(), lr=0.1, c=0.01, mu=0.6)
    model(torch.randn(5, 4)).sum().backward()
    opt.step()
    before = copy.deepcopy((model.state_dict(), opt.state_dict()["state"]))
    good = opt.param_groups[0][key]
    opt.param_groups[0][key] = bad
    with pytest.raises(ValueError, match=rf"Invalid {key}: {bad!r}"):
        opt.step()
    torch.testing.assert_close((model.state_dict(), opt.state_dict()["state"]), before, rtol=0, atol=0)
    opt.param_groups[0][key] = good  # a valid value restored: training goes on
    opt.step()
    assert opt.state[model.weight]["step"].item() == 2


def test_loading_state_of_another_shape_is_refused_naming_both_shapes():
    src = nn.Linear(4, 3)
    opt = GRDA(src.parameters(), lr=0.1)
    src(torch.randn(2, 4)).sum().backward()
    opt.step()
    for shape in ((3, 1), (4, 3)):
        dst = nn.Linear(shape[1], shape[0])
        weight = dst.weight.detach().clone()
        o = GRDA(dst.parameters(), lr=0.1)
        with pytest.raises(
            ValueError,
            match=rf"\[0\]\['params'\]\[0\] has shape \(3, 4\), the parameter has shape {re.escape(str(shape))}",
        ):
            o.load_state_dict(opt.state_dict())
        assert len(o.state) == 0
        dst(torch.randn(2, shape[1])).sum().backward()
        o.step()  # still usable, and the parameter keeps its shape
        assert dst.weight.shape == weight.shape


def test_step_never_resizes_a_parameter():
    model = nn.Linear(4, 3)
    opt = GRDA(model.parameters(), lr=0.1)
    model(torch.randn(2, 4)).sum().backward()
    opt.step()
    opt.state[model.weight]["dual"] = torch.zeros(4, 3)  # a corrupted state
    with pytest.raises(RuntimeError, match=r"dual average has shape \(4, 3\) but its parameter has shape \(3, 4\)"):
        opt.step()
    assert model.weight.shape == (3, 4)


def test_a_tensor_lr_steps_as_its_float_and_changes_in_place():
    torch.manual_seed(0)
    a = nn.Linear(5, 3)
    b = copy.deepcopy(a)
    lr = torch.tensor(0.1, dtype=torch.float64)
    o_t = GRDA(a.parameters(), lr=lr, c=0.05, mu=0.6)
    o_f = GRDA(b.parameters(), lr=0.1, c=0.05, mu=0.6)
    for i in range(6):
        if i == 3:
            lr.fill_(0.01)  # what torch's schedulers do to a tensor lr
            o_f.param_groups[0]["lr"] = 0.01
        x = torch.randn(4, 5)
        for model, opt in ((a, o_t), (b, o_f)):
            opt.zero_grad()
            model(x).square().sum().backward()
            opt.step()
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)
        assert o_t.state[p]["threshold"].item() == o_f.state[q]["threshold"].item()
    with pytest.raises(ValueError, match=r"Invalid lr: tensor\(\[0.1000, 0.2000\]\)"):
        GRDA(a.parameters(), lr=torch.tensor([0.1, 0.2]))
    lr.fill_(-1.0)
    with pytest.raises(ValueError, match=r"Invalid lr: tensor\(-1"):
        o_t.step()


@pytest.mark.parametrize("nonfinite", ["raise", "skip", "ignore"])
def test_meta_parameters_step_in_every_nonfinite_mode(nonfinite):
    model = nn.Linear(4, 3, device="meta")
    opt = GRDA(model.parameters(), lr=0.1, nonfinite=nonfinite)
    for p in model.parameters():
        p.grad = torch.empty_like(p)
    opt.step()
    assert opt.state[model.weight]["dual"].device.type == "meta"
    assert opt.state[model.weight]["step"].item() == 1


def test_sparse_gradients_are_refused():
    emb = nn.Embedding(10, 3, sparse=True)
    opt = GRDA(emb.parameters())
    emb(torch.tensor([1, 2])).sum().backward()
    with pytest.raises(RuntimeError, match="GRDA does not support sparse gradients"):
        opt.step()


def nan_setup(policy):
    model = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 1))
    opt = GRDA(model.parameters(), lr=0.1, c=0.01, nonfinite=policy)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()  # a good step first, so there is state to protect
    before = [p.detach().clone() for p in model.parameters()]
    duals = [opt.state[p]["dual"].clone() for p in model.parameters()]
    opt.zero_grad()
    model(torch.randn(4, 3)).sum().backward()
    model[1].weight.grad[0, 1] = float("nan")
    model[0].bias.grad[2] = float("inf")
    return model, opt, before, duals


def assert_unchanged(model, opt, before, duals):
    for p, b, d in zip(model.parameters(), before, duals):
        assert torch.equal(p, b)
        assert torch.equal(opt.state[p]["dual"], d)
        assert opt.state[p]["step"].item() == 1


def test_nonfinite_gradient_raises_by_default_and_changes_nothing():
    model, opt, before, duals = nan_setup("raise")
    with pytest.raises(FloatingPointError, match=r"param_groups\[0\]\['params'\]\[1\] \(shape \(3,\)\).*\[2\]"):
        opt.step()
    assert_unchanged(model, opt, before, duals)


def test_nonfinite_gradient_skip_policy_skips_the_whole_step():
    model, opt, before, duals = nan_setup("skip")
    with pytest.warns(RuntimeWarning, match="skipped this step"):
        opt.step()
    assert_unchanged(model, opt, before, duals)
    assert opt.skipped_steps == 1
    opt.zero_grad()
    model(torch.randn(4, 3)).sum().backward()
    opt.step()  # a finite step afterwards proceeds normally
    assert all(opt.state[p]["step"].item() == 2 for p in model.parameters())


def test_nonfinite_ignore_policy_does_no_check():
    model, opt, *_ = nan_setup("ignore")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        opt.step()
    assert model[1].weight.isnan().any()


# Small gradients share one _foreach_norm call; large ones are checked by their own sum: test both ways.
CHECK_SIZES = [4, _SUM_ONE_BY_ONE]


@pytest.mark.parametrize("size", CHECK_SIZES)
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_every_kind_of_nonfinite_value_is_found_in_small_and_large_gradients(size, bad):
    p, q = torch.zeros(size, requires_grad=True), torch.zeros(size, dtype=torch.float64, requires_grad=True)
    opt = GRDA([p, q], lr=0.1, c=0.0)
    p.grad, q.grad = torch.ones(size), torch.ones(size, dtype=torch.float64)
    q.grad[size // 2] = bad
    with pytest.raises(FloatingPointError, match=rf"\['params'\]\[1\] \(shape \({size},\)\)"):
        opt.step()
    assert p.abs().sum() == 0
    assert all(state["step"].item() == 0 for state in opt.state.values())


@pytest.mark.parametrize("size", CHECK_SIZES)
def test_finite_gradients_whose_sum_overflows_still_step(size):
    p = torch.zeros(size, requires_grad=True)
    opt = GRDA([p], lr=1e-38, c=0.0)
    p.grad = torch.full((size,), 3e38)  # finite, but their float32 sum (and norm) is inf
    opt.step()
    assert opt.state[p]["step"].item() == 1
    torch.testing.assert_close(p.detach(), torch.full((size,), -3.0))


def test_half_precision_gradients_are_checked_without_overflow():
    p = torch.zeros(4096, dtype=torch.float16, requires_grad=True)
    opt = GRDA([p], lr=1e-6, c=0.0)
    p.grad = torch.full_like(p, 60000.0)  # a float16 sum would overflow; the check sums in float32
    opt.step()
    assert opt.state[p]["step"].item() == 1


def test_per_group_hyperparameters():
    torch.manual_seed(0)
    w0, b0 = torch.randn(30, dtype=torch.float64), torch.randn(30, dtype=torch.float64)
    w, b = w0.clone().requires_grad_(), b0.clone().requires_grad_()
    opt = GRDA([{"params": [w], "mu": 0.7}, {"params": [b], "c": 0.0, "lr": 0.05}], lr=0.1, c=0.1, mu=0.51)
    grads = random_grads((30,), 20, seed=5)
    for g in grads:
        w.grad, b.grad = g.clone(), g.clone()
        opt.step()
    w_ref, _, ts = reference(w0, grads, [0.1] * 20, 0.1, 0.7)
    torch.testing.assert_close(w.detach(), w_ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(b.detach(), b0 - 0.05 * torch.stack(grads).sum(0), rtol=0, atol=1e-12)
    thresholds = opt.group_thresholds()
    assert thresholds[0] == pytest.approx(ts[-1])
    assert thresholds[1] == 0.0


def test_group_thresholds_before_any_step():
    opt = GRDA([{"params": [torch.zeros(2, requires_grad=True)]}, {"params": [torch.zeros(2, requires_grad=True)]}])
    assert opt.group_thresholds() == [0.0, 0.0]
    assert len(opt.state) == 0  # reading thresholds creates no state


def test_an_invalid_param_group_is_refused_before_it_is_added():
    opt = GRDA([torch.zeros(2, requires_grad=True)], lr=0.1)
    with pytest.raises(ValueError, match=r"Invalid mu: 0"):
        opt.add_param_group({"params": [torch.zeros(3, requires_grad=True)], "mu": 0})
    assert len(opt.param_groups) == 1
    opt.add_param_group({"params": [torch.zeros(3, requires_grad=True)], "c": 0.0})  # defaults fill the rest
    assert opt.param_groups[1]["lr"] == 0.1


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
    for lr in [0.1] * 5 + [0.01] * 5:
        for o in (o_ref, o_fused):
            o.param_groups[0]["lr"] = lr
        for p, q in zip(ref, fused):
            g = torch.randn_like(p)
            p.grad, q.grad = g, g.clone()
        o_ref.step()
        o_fused.step()
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


def test_loading_another_optimizers_state_is_refused():
    p = torch.zeros(3, requires_grad=True)
    sgd = torch.optim.SGD([p], lr=0.1, momentum=0.9)
    p.grad = torch.ones(3)
    sgd.step()
    with pytest.raises(ValueError, match=r"param_groups\[0\] has no \['c', 'mu'\], so it is not a GRDA state"):
        GRDA([p]).load_state_dict(sgd.state_dict())


def _nan_on_one_rank(rank: int, port: int, out: str) -> None:
    """One of two gloo ranks with an FSDP2-sharded net; only rank 1's gradient shard holds a NaN.

    The NaN goes into a large weight (checked by its own sum) or a small bias (checked in the shared norm call).
    """
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    join_gloo(rank, port)
    try:
        torch.manual_seed(0)
        net = nn.Sequential(nn.Linear(256, 2 * _SUM_ONE_BY_ONE // 256), nn.ReLU(), nn.Linear(512, 2))
        fully_shard(net, mesh=init_device_mesh("cpu", (2,)))
        results = {}
        for where, grad in (("large", lambda: net[0].weight.grad), ("small", lambda: net[2].bias.grad)):
            for policy in ("raise", "skip"):
                opt = GRDA(net.parameters(), lr=0.1, c=0.1, mu=0.6, nonfinite=policy)
                net.zero_grad()
                net(torch.randn(3, 256)).sum().backward()
                if rank == 1:
                    grad().to_local().view(-1)[0] = float("nan")
                before = [p.to_local().clone() for p in net.parameters()]
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        opt.step()
                    results[where, policy] = "stepped"
                except FloatingPointError:
                    results[where, policy] = "raised"
                unchanged = all(torch.equal(b, p.to_local()) for b, p in zip(before, net.parameters()))
                results[where, policy] += ", unchanged" if unchanged else ", changed"
                results[where, policy, "skipped_steps"] = opt.skipped_steps
        torch.save(results, f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_fsdp2_ranks_decide_alike_on_a_nan_in_one_shard(tmp_path):
    spawn_two_ranks(_nan_on_one_rank, str(tmp_path))
    expected = {}
    for where in ("large", "small"):
        expected |= {
            (where, "raise"): "raised, unchanged",
            (where, "raise", "skipped_steps"): 0,
            (where, "skip"): "stepped, unchanged",
            (where, "skip", "skipped_steps"): 1,
        }
    assert [torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1)] == [expected, expected]
