"""GReg under DDP: every rank picks, masks and penalises identically."""

from __future__ import annotations

import pytest
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.strategies import DDPStrategy

from lightning_grda.pruning.greg import GReg
from tests.helpers import TinyModule, flat_params
from tests.pruning.greg_harness import make_trainer


class RankWriter(Callback):
    """Each rank saves its picks, masks, penalties and final weights, for the DDP test."""

    def __init__(self, path, greg: GReg) -> None:
        self.path, self.greg = path, greg
        self.penalties: list[float] = []

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        self.penalties.append(self.greg.penalty)

    def on_fit_end(self, trainer, pl_module):
        out = {
            "picked": self.greg.picked,
            "masks": {n: b.clone() for n, b in pl_module.named_buffers() if n.endswith("_mask")},
            "params": flat_params(pl_module),
            "penalties": self.penalties,
            "pruned_at": self.greg.pruned_at_step,
        }
        torch.save(out, self.path / f"rank{trainer.global_rank}.pt")


@pytest.mark.slow
def test_ddp_ranks_pick_and_mask_identically(tmp_path):
    greg = GReg(delta=0.25, update_interval=1, hold_steps=2, granularity="filter", sparsity=0.5, print_table=False)
    writer = RankWriter(tmp_path, greg)
    trainer = make_trainer(
        tmp_path,
        [greg, writer],
        strategy=DDPStrategy(process_group_backend="gloo", start_method="spawn"),
        devices=2,
        max_epochs=2,  # 4 steps per epoch and rank: grows 0..3, holds 4..5, prunes at step 6
    )
    trainer.fit(TinyModule())
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1))
    assert r0["pruned_at"] == r1["pruned_at"] == 6
    assert (
        r0["picked"].keys()
        == r1["picked"].keys()
        == {"net.fc1.weight", "net.fc1.bias", "net.fc2.weight", "net.fc2.bias"}
    )
    assert all(torch.equal(r0["picked"][k], r1["picked"][k]) for k in r0["picked"])
    assert r0["masks"].keys() == {
        "net.fc1.weight_mask",
        "net.fc1.bias_mask",
        "net.fc2.weight_mask",
        "net.fc2.bias_mask",
    }
    assert all(torch.equal(r0["masks"][k], r1["masks"][k]) for k in r0["masks"])
    assert r0["penalties"] == r1["penalties"]
    assert r0["penalties"] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0, 0.0, 0.0]
    assert torch.equal(r0["params"], r1["params"])
