from fractions import Fraction

import pytest
import torch
from rich.console import Console
from torch import nn
from torch.nn.utils import prune

from lightning_grda.sparsity import (
    SparsityReport,
    SparsityRow,
    global_sparsity,
    named_effective_parameters,
    parameter_sparsity,
    sparsity_report,
    tensor_sparsity,
    zero_counts,
)
from tests.helpers import TinyNet, join_gloo, spawn_two_ranks


def loop_zeros(t: torch.Tensor) -> int:
    """Independent reference: a plain Python loop over the elements."""
    return sum(1 for v in t.flatten().tolist() if v == 0)


def sparse_tinynet() -> TinyNet:
    """TinyNet (fc1 16x8 + 16, norm 16 + 16, fc2 3x16 + 3: 227 parameters) with known zeros."""
    torch.manual_seed(0)
    net = TinyNet()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.rand_like(p) + 0.5)  # no accidental zeros
        net.fc1.weight[:10].zero_()  # 80 zeros
        net.fc1.bias[:3] = -0.0  # 3 zeros (negative zero is a zero)
        net.norm.weight[0] = float("nan")  # not a zero
        net.fc2.weight[:, :4].zero_()  # 12 zeros
    return net


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


def test_global_sparsity_is_exact_over_all_parameters():
    net = sparse_tinynet()
    # hand count: 80 + 3 + 12 zeros over 128 + 16 + 16 + 16 + 48 + 3 = 227 parameters
    assert global_sparsity(net) == 95 / 227
    reference = sum(loop_zeros(p) for p in net.parameters()) / sum(p.numel() for p in net.parameters())
    assert global_sparsity(net) == reference
    assert global_sparsity(net.parameters()) == 95 / 227
    assert global_sparsity(net.named_parameters()) == 95 / 227
    assert global_sparsity([net.fc1.weight, net.fc1.bias]) == 83 / 144
    assert global_sparsity([]) == 0.0


def test_totals_are_not_a_mean_of_layer_ratios():
    # ModelPruning once averaged per-layer ratios; the total must be sum(zeros) / sum(numel).
    layer = nn.Linear(8, 16)
    with torch.no_grad():
        layer.weight.zero_()
        layer.bias.fill_(1.0)
    report = sparsity_report(layer)
    assert [row.sparsity for row in report.rows] == [1.0, 0.0]
    assert (report.zeros, report.numel, report.nonzeros) == (128, 144, 16)
    assert report.sparsity == 128 / 144
    assert Fraction(report.zeros, report.numel) == Fraction(8, 9)


def test_sparsity_report_rows():
    net = sparse_tinynet()
    report = sparsity_report(net)
    assert isinstance(report, SparsityReport)
    assert report.rows[0] == SparsityRow("fc1.weight", (16, 8), 128, 80)
    assert report.rows[0].nonzeros == 48
    assert report.rows[0].sparsity == 80 / 128
    expected = [(n, tuple(p.shape), p.numel(), loop_zeros(p)) for n, p in net.named_parameters()]
    assert [tuple(row) for row in report.rows] == expected


def test_report_reads_the_host_once(monkeypatch):
    calls = []
    tolist, item = torch.Tensor.tolist, torch.Tensor.item

    def counting_tolist(self):
        calls.append("tolist")
        return tolist(self)

    def counting_item(self):
        calls.append("item")
        return item(self)

    monkeypatch.setattr(torch.Tensor, "tolist", counting_tolist)
    monkeypatch.setattr(torch.Tensor, "item", counting_item)
    net = sparse_tinynet()
    report = sparsity_report(net)
    assert len(report.rows) == 6
    assert calls == ["tolist"]


def test_parameter_sparsity_matches_a_loop():
    net = sparse_tinynet()
    expected = {n: loop_zeros(p) / p.numel() for n, p in net.named_parameters()}
    assert parameter_sparsity(net) == expected
    assert parameter_sparsity(net)["fc2.weight"] == 12 / 48


def test_shared_parameters_are_counted_once():
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc = nn.Linear(4, 4, bias=False)
            self.dec = nn.Linear(4, 4, bias=False)
            self.dec.weight = self.enc.weight

    model = Tied()
    with torch.no_grad():
        model.enc.weight.fill_(1.0)
        model.enc.weight[0].zero_()
    report = sparsity_report(model)
    assert [row.name for row in report.rows] == ["enc.weight"]
    assert (report.zeros, report.numel) == (4, 16)
    assert global_sparsity(model) == 0.25


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


def test_report_table():
    net = sparse_tinynet()
    report = sparsity_report(net)
    console = Console(record=True, width=120)
    console.print(report.to_table())
    text = console.export_text()
    lines = text.splitlines()
    fc1 = next(line for line in lines if "fc1.weight" in line)
    assert "16x8" in fc1
    assert "128" in fc1
    assert "48" in fc1
    assert "62.50%" in fc1
    total = next(line for line in lines if "Total" in line)
    assert "227" in total
    assert "132" in total  # 227 - 95 nonzeros
    assert f"{95 / 227:.2%}" in total
    assert sum("weight" in line or "bias" in line for line in lines) == 6


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
