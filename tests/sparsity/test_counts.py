"""Zeros per tensor and the effective parameters (lightning_grda/sparsity/counts.py), sharded tensors included."""

import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from lightning_grda.sparsity import named_effective_parameters, sparsity_report, tensor_sparsity, zero_counts
from tests.helpers import join_gloo, spawn_two_ranks
from tests.sparsity.known_zeros import loop_zeros, sparse_tinynet


def test_zero_counts_matches_a_loop():
    g = torch.Generator().manual_seed(0)
    tensors = [
        torch.randn(5, 7, generator=g).relu(),
        torch.randint(-1, 2, (4, 3, 2), generator=g).double(),
        torch.randn(9, generator=g).relu().bfloat16(),
        torch.randint(-1, 2, (6,), generator=g),
        torch.zeros(3, 3),
        torch.tensor(0.0),
        torch.empty(0, 4),
    ]
    counts = zero_counts(tensors)
    assert counts.dtype == torch.int64
    assert counts.shape == (len(tensors),)
    assert counts.tolist() == [loop_zeros(t) for t in tensors]


def test_zero_counts_empty_and_device():
    empty = zero_counts([])
    assert empty.dtype == torch.int64
    assert empty.shape == (0,)
    assert zero_counts([torch.zeros(2)], device="cpu").device == torch.device("cpu")


def test_zero_counts_of_grad_tracking_params_need_no_grad():
    p = nn.Parameter(torch.tensor([0.0, 1.0]))
    counts = zero_counts([p])
    assert not counts.requires_grad
    assert counts.tolist() == [1]


def test_tensor_sparsity_hand_values():
    assert tensor_sparsity(torch.tensor([0.0, -0.0, 1.0, float("nan")])) == 0.5
    assert tensor_sparsity(torch.tensor([1e-30, 1.0])) == 0.0  # tiny is not zero
    assert tensor_sparsity(torch.zeros(3, 4)) == 1.0
    assert tensor_sparsity(torch.empty(0)) == 0.0


def test_pruned_weights_are_counted_as_the_effective_weight():
    net = sparse_tinynet()
    prune.random_unstructured(net.fc2, "weight", amount=20)
    with torch.no_grad():
        # as an optimizer would: change weight_orig after pruning, with no forward since
        net.fc2.weight_orig.zero_()
        net.fc2.weight_orig[:, -1] = 1.0
    effective = net.fc2.weight_orig * net.fc2.weight_mask
    report = sparsity_report(net)
    names = [row.name for row in report.rows]
    assert "fc2.weight" in names
    assert not any(name.endswith(("_orig", "_mask")) for name in names)
    assert report.numel == 227  # the mask buffer is not counted
    row = report.rows[names.index("fc2.weight")]
    assert row.shape == (3, 16)
    assert row.zeros == loop_zeros(effective)
    assert row.zeros >= 45  # at least the 45 entries set to zero above
    assert dict(named_effective_parameters(net))["fc2.weight"].equal(effective)
    # the rest is unchanged: 80 + 3 zeros in fc1
    assert report.zeros == 83 + row.zeros


def test_pruned_top_level_module_name():
    layer = nn.Linear(2, 2)
    prune.identity(layer, "bias")
    assert [name for name, _ in named_effective_parameters(layer)] == ["weight", "bias"]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_dtypes(dtype):
    t = torch.tensor([0.0, 2.0, 0.0, -0.0], dtype=dtype)
    assert zero_counts([t]).tolist() == [3]


def _count_sharded(rank: int, port: int, out: str) -> None:
    """One of two gloo ranks: counts over DTensors sharded across both, and over a module sharded by FSDP2."""
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard
    from torch.distributed.tensor import Replicate, Shard, distribute_tensor

    join_gloo(rank, port)
    try:
        mesh = init_device_mesh("cpu", (2,))
        full = sharded_examples()
        placements = [[Shard(0)], [Shard(0)], [Shard(1)], [Replicate()]]
        dtensors = [distribute_tensor(t, mesh, p) for t, p in zip(full, placements)]
        counts = zero_counts(dtensors).tolist()
        net = sparse_tinynet()
        fully_shard(net.fc1, mesh=mesh)
        fully_shard(net, mesh=mesh)
        report = sparsity_report(net)
        table = [tuple(row) for row in report.rows]
        local_shapes = [tuple(p.to_local().shape) for p in net.parameters()]
        torch.save({"counts": counts, "rows": table, "local_shapes": local_shapes}, f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def sharded_examples() -> list[torch.Tensor]:
    """Tensors with known zeros whose shards hold different counts; one splits unevenly (3 rows over 2 ranks)."""
    a = torch.arange(24.0).reshape(6, 4) % 3  # zeros wherever the value is a multiple of 3
    b = torch.tensor([[0.0, 1.0, 0.0, 2.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0], [1.0, 2.0, 3.0, 0.0, 0.0]])
    c = torch.zeros(4, 6)
    c[:, :2] = 1.0  # every zero in the second half of dim 1
    d = torch.tensor([0.0, 0.0, 5.0])  # replicated: counted once, not once per rank
    return [a, b, c, d]


@pytest.mark.slow
def test_sharded_dtensors_are_counted_over_all_shards(tmp_path):
    spawn_two_ranks(_count_sharded, str(tmp_path))
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1)]
    expected = [loop_zeros(t) for t in sharded_examples()]
    assert expected == [8, 10, 16, 2]
    truth = sparsity_report(sparse_tinynet())
    for r in ranks:
        assert r["counts"] == expected
        assert r["rows"] == [tuple(row) for row in truth.rows]  # full names, shapes and sizes; exact zeros
    # The ranks really held different pieces (fc2's 3 rows split 2 + 1), so the sums were needed.
    assert ranks[0]["local_shapes"] != ranks[1]["local_shapes"]
