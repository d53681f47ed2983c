"""Tests for the mask structure (lightning_grda/pruning/masks.py) and layer selection (lightning_grda/layers.py)."""

import pytest
import torch
from torch import nn

from lightning_grda.layers import select_layers
from lightning_grda.pruning.masks import Target, apply_mask, is_pruned, make_pruning_permanent, register_structure_hooks
from lightning_grda.sparsity import effective
from tests.helpers import TinyModule, TinyNet


def test_layer_selection():
    module = TinyModule()
    assert [n for n, _ in select_layers(module)] == ["net.fc1", "net.fc2"]
    assert [n for n, _ in select_layers(module, "fc2")] == ["net.fc2"]
    assert [n for n, _ in select_layers(module, ["LayerNorm", nn.Linear])] == ["net.fc1", "net.norm", "net.fc2"]


def test_structure_hooks_load_pruned_and_unpruned_state_dicts():
    pruned = TinyNet()
    apply_mask(pruned.fc1, "weight", torch.rand(16, 8) > 0.5)
    plain = TinyNet()
    targets = [Target("fc1.weight", plain.fc1, "weight")]
    with pytest.raises(RuntimeError, match="weight_orig"):
        TinyNet().load_state_dict(pruned.state_dict())
    handles = register_structure_hooks(targets)
    plain.load_state_dict(pruned.state_dict())  # gains the structure, then loads the masks
    assert [n for n, _ in plain.named_parameters()] == [n for n, _ in pruned.named_parameters()]
    assert torch.equal(effective(plain.fc1), effective(pruned.fc1))
    plain.load_state_dict(TinyNet().state_dict())  # and drops it again for an unpruned state dict
    assert not is_pruned(plain.fc1)
    assert [n for n, _ in plain.named_parameters()][0] == "fc1.weight"
    for handle in handles:
        handle.remove()
    assert make_pruning_permanent(pruned) == ["fc1.weight"]
