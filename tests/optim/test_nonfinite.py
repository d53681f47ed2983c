"""The non-finite check: all or nothing, every kind of bad value, small and large gradients, across FSDP2 ranks."""

import warnings

import pytest
import torch
from torch import nn

from lightning_grda.optim.grda import GRDA
from lightning_grda.optim.nonfinite import SUM_ONE_BY_ONE
from tests.helpers import join_gloo, spawn_two_ranks


@pytest.mark.parametrize("nonfinite", ["raise", "skip", "ignore"])
def test_meta_parameters_step_in_every_nonfinite_mode(nonfinite):
    model = nn.Linear(4, 3, device="meta")
    opt = GRDA(model.parameters(), lr=0.1, nonfinite=nonfinite)
    for p in model.parameters():
        p.grad = torch.empty_like(p)
    opt.step()
    assert opt.state[model.weight]["dual"].device.type == "meta"
    assert opt.state[model.weight]["step"].item() == 1


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
CHECK_SIZES = [4, SUM_ONE_BY_ONE]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("size", CHECK_SIZES)
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_every_kind_of_nonfinite_value_is_found_in_small_and_large_gradients(size, bad, dtype):
    p, q = torch.zeros(size, requires_grad=True), torch.zeros(size, dtype=dtype, requires_grad=True)
    opt = GRDA([p, q], lr=0.1, c=0.0)
    p.grad, q.grad = torch.ones(size), torch.ones(size, dtype=dtype)
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


def _nan_on_one_rank(rank: int, port: int, out: str) -> None:
    """One of two gloo ranks with an FSDP2-sharded net; only rank 1's gradient shard holds a NaN.

    The NaN goes into a large weight or a small bias, of a float32 or a bfloat16 net.
    """
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    join_gloo(rank, port)
    try:
        results = {}
        for dtype in (torch.float32, torch.bfloat16):
            torch.manual_seed(0)
            net = nn.Sequential(nn.Linear(256, 2 * SUM_ONE_BY_ONE // 256), nn.ReLU(), nn.Linear(512, 2)).to(dtype)
            fully_shard(net, mesh=init_device_mesh("cpu", (2,)))
            for where, layer, name in (("large", net[0], "weight"), ("small", net[2], "bias")):
                for policy in ("raise", "skip"):
                    key = (str(dtype), where, policy)
                    opt = GRDA(net.parameters(), lr=0.1, c=0.1, mu=0.6, nonfinite=policy)
                    net.zero_grad()
                    net(torch.randn(3, 256, dtype=dtype)).sum().backward()
                    if rank == 1:
                        getattr(layer, name).grad.to_local().view(-1)[0] = float("nan")
                    before = [p.to_local().clone() for p in net.parameters()]
                    try:
                        with warnings.catch_warnings():
                            warnings.simplefilter("ignore")
                            opt.step()
                        results[key] = "stepped"
                    except FloatingPointError:
                        results[key] = "raised"
                    unchanged = all(torch.equal(b, p.to_local()) for b, p in zip(before, net.parameters()))
                    results[key] += ", unchanged" if unchanged else ", changed"
                    results[(*key, "skipped_steps")] = opt.skipped_steps
        torch.save(results, f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_fsdp2_ranks_decide_alike_on_a_nan_in_one_shard(tmp_path):
    spawn_two_ranks(_nan_on_one_rank, str(tmp_path))
    expected = {}
    for dtype in ("torch.float32", "torch.bfloat16"):
        for where in ("large", "small"):
            expected |= {
                (dtype, where, "raise"): "raised, unchanged",
                (dtype, where, "raise", "skipped_steps"): 0,
                (dtype, where, "skip"): "stepped, unchanged",
                (dtype, where, "skip", "skipped_steps"): 1,
            }
    assert [torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1)] == [expected, expected]
