"""GReg's masks: exact zeros through fine-tuning, whole filters, conv channels, made permanent at the end."""

from __future__ import annotations

import torch
from lightning.pytorch.callbacks import Callback
from rich.console import Console

from lightning_grda.pruning.greg import GReg
from lightning_grda.sparsity import effective, pruning_table
from tests.helpers import TinyModule
from tests.pruning.greg_harness import SMALL, ConvModule, DecayModule, ZeroCheck, fit

# ----------------------------------------------------------------------------------------------------------------------
# masks


def test_masks_hold_exact_zeros_through_fine_tuning_with_momentum_and_weight_decay(tmp_path):
    greg = GReg(**SMALL, print_table=False)
    check = ZeroCheck()
    module = DecayModule()
    names_before = [n for n, _ in module.named_parameters()]
    module, trainer = fit(tmp_path, [greg, check], module=module, max_epochs=3)
    assert check.checked == 2 * (24 - 20)  # two layers, every step from the prune step on
    # torch's prune structure, parameters in their old order, the optimizer still holding the same objects
    assert [n for n, _ in module.named_parameters()] == [
        n.replace("weight", "weight_orig") if n.split(".")[-2].startswith("fc") and n.endswith("weight") else n
        for n in names_before
    ]
    optimizer = trainer.optimizers[0]
    held = optimizer.param_groups[0]["params"]
    for layer in (module.net.fc1, module.net.fc2):
        assert any(p is layer.weight_orig for p in held)
        assert "momentum_buffer" in optimizer.state[layer.weight_orig]
        mask = layer.weight_mask
        picked = greg.picked[f"net.{'fc1' if layer is module.net.fc1 else 'fc2'}.weight"]
        assert torch.equal(mask == 0, picked)
        assert int((mask == 0).sum()) == round(0.9 * mask.numel())
    # the kept weights did train after pruning
    assert not torch.equal(effective(module.net.fc1), check.first)


def test_masked_weight_orig_would_leak_without_the_zeroing(tmp_path):
    """Control for the test above: with the post-step zeroing detached, momentum moves masked weight_orig entries."""
    greg = GReg(**SMALL, print_table=False)

    class Detach(Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            greg._layers.keeper.detach()

    module, _ = fit(tmp_path, [greg, Detach()], module=DecayModule(), max_epochs=3)
    layer = module.net.fc1
    masked = layer.weight_mask == 0
    assert torch.count_nonzero(layer.weight_orig[masked]) > 0
    assert torch.count_nonzero(effective(layer)[masked]) == 0


def test_filter_granularity_zeroes_whole_output_channels_and_reports_them(tmp_path):
    greg = GReg(**SMALL, sparsity=0.5, granularity="filter", print_table=False)
    module, _ = fit(tmp_path, [greg, ZeroCheck()], max_epochs=3)
    fc1, fc2 = module.net.fc1, module.net.fc2
    removed = (effective(fc1) == 0).all(dim=1)
    assert int(removed.sum()) == 8
    assert torch.equal(removed, greg.picked["net.fc1.bias"])
    assert torch.count_nonzero(effective(fc1, "bias")[removed]) == 0
    assert int((effective(fc2) == 0).all(dim=1).sum()) == round(0.5 * 3)
    out = fc1(torch.randn(5, 8))  # the pruned channels output exact zeros
    assert torch.count_nonzero(out[:, removed]) == 0
    assert torch.count_nonzero(out[:, ~removed]) > 0
    rows = greg.report()
    assert [(r.layer, r.filters, r.filters_removed, r.zeros) for r in rows] == [
        ("net.fc1", 16, 8, 64),
        ("net.fc2", 3, 2, 32),
    ]
    assert greg.report(module) == rows
    console = Console(record=True, width=120)
    console.print(pruning_table(rows))
    text = console.export_text()
    assert "8 / 16" in text
    assert "10 / 19" in text


def test_filter_granularity_on_conv_output_channels(tmp_path):
    greg = GReg(delta=0.5, update_interval=1, hold_steps=1, sparsity=0.5, granularity="filter", print_table=False)
    module, _ = fit(tmp_path, [greg], module=ConvModule(), max_epochs=2)
    conv = module.net[0]
    removed = (effective(conv).flatten(1) == 0).all(dim=1)
    assert int(removed.sum()) == 3
    out = conv(torch.randn(2, 1, 4, 4))
    assert torch.count_nonzero(out[:, removed]) == 0
    assert [(r.layer, r.filters, r.filters_removed) for r in greg.report()] == [("net.0", 6, 3), ("net.3", 3, 2)]


def test_make_permanent_at_fit_end(tmp_path):
    greg = GReg(delta=0.5, update_interval=1, hold_steps=0, make_permanent=True, print_table=False)
    module = TinyModule()
    names = [n for n, _ in module.named_parameters()]
    module, _ = fit(tmp_path, [greg], module=module, max_epochs=1)
    assert greg.pruned_at_step == 2
    assert [n for n, _ in module.named_parameters()] == names
    assert not any(n.endswith("_mask") for n, _ in module.named_buffers())
    assert int((module.net.fc1.weight == 0).sum()) == round(0.9 * 128)
    assert torch.equal(module.net.fc1.weight == 0, greg.picked["net.fc1.weight"])
