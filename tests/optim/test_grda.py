"""The GRDA optimizer's state, checks and precision: what it keeps, refuses and restores."""

import copy
import io
import re

import numpy as np
import pytest
import torch
from torch import nn

from lightning_grda.optim.grda import GRDA
from tests.optim.grda_reference import random_grads, reference


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


def test_sparse_gradients_are_refused():
    emb = nn.Embedding(10, 3, sparse=True)
    opt = GRDA(emb.parameters())
    emb(torch.tensor([1, 2])).sum().backward()
    with pytest.raises(RuntimeError, match="GRDA does not support sparse gradients"):
        opt.step()


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


def test_loading_another_optimizers_state_is_refused():
    p = torch.zeros(3, requires_grad=True)
    sgd = torch.optim.SGD([p], lr=0.1, momentum=0.9)
    p.grad = torch.ones(3)
    sgd.step()
    with pytest.raises(ValueError, match=r"param_groups\[0\] has no \['c', 'mu'\], so it is not a GRDA state"):
        GRDA([p]).load_state_dict(sgd.state_dict())
