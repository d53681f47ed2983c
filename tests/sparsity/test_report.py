"""Per-parameter and global sparsity of a module (lightning_grda/sparsity/report.py)."""

from fractions import Fraction

import torch
from rich.console import Console
from torch import nn

from lightning_grda.sparsity import SparsityReport, SparsityRow, global_sparsity, parameter_sparsity, sparsity_report
from tests.sparsity.known_zeros import loop_zeros, sparse_tinynet


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
