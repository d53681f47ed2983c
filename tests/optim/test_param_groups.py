"""Tests for the param-group helpers (lightning_grda/optim/param_groups.py)."""

from torch import nn

from lightning_grda import mixin
from lightning_grda.optim.param_groups import norm_and_bias_parameters, split_exempt


def test_norm_and_bias_parameters_classifies_by_module_and_ndim():
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.LayerNorm([2, 3]), nn.GroupNorm(1, 2))
    names = [name for name, _ in norm_and_bias_parameters(net)]
    # the LayerNorm's 2-D weight is exempt because of its module, not its shape
    assert names == ["0.bias", "1.weight", "1.bias", "2.weight", "2.bias", "3.weight", "3.bias"]
    assert mixin.norm_and_bias_parameters is norm_and_bias_parameters  # the old import path still works


def test_split_exempt_puts_pruned_groups_first_and_keeps_keys_and_names():
    a, b = nn.Linear(2, 2), nn.Linear(2, 2)
    groups = [
        {"params": [a.weight, a.bias], "param_names": ["a.weight", "a.bias"], "lr": 0.1, "name": "a"},
        {"params": [b.bias], "param_names": ["b.bias"], "lr": 0.2},
        {"params": [b.weight], "lr": 0.3},
    ]
    exempt = {id(a.bias), id(b.bias)}
    got = split_exempt(groups, exempt)
    assert [(g.get("param_names"), g["lr"], g.get("c")) for g in got] == [
        (["a.weight"], 0.1, None),
        (None, 0.3, None),
        (["a.bias"], 0.1, 0.0),
        (["b.bias"], 0.2, 0.0),
    ]
    assert got[0]["name"] == got[2]["name"] == "a"
    assert [g["params"] for g in split_exempt(groups, set())] == [g["params"] for g in groups]
