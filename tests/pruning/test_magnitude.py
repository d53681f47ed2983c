"""Tests for OneShotMagnitudePruning (a ModelPruning subclass)."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, ModelPruning

from lightning_grda.pruning.magnitude import OneShotMagnitudePruning
from lightning_grda.pruning.masks import is_pruned
from lightning_grda.sparsity import effective
from tests.helpers import TinyModule, quiet_trainer

pytestmark = pytest.mark.filterwarnings("ignore:Be aware that when using `ckpt_path`:UserWarning")

BATCHES = 8  # TinyModule(n=64), batch size 8


class DecayModule(TinyModule):
    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr, momentum=0.9, weight_decay=0.01)


class EpochRecorder(Callback):
    """After the pruner: per epoch end, the zeros of each layer's mask (None if unpruned) and exact-zero checks."""

    def __init__(self) -> None:
        self.zeros: dict[int, dict[str, int | None]] = {}
        self.last_step = 0

    def on_train_epoch_end(self, trainer, pl_module):
        self.zeros[trainer.current_epoch] = {
            name: int((layer.weight_mask == 0).sum()) if is_pruned(layer) else None
            for name, layer in (("fc1", pl_module.net.fc1), ("fc2", pl_module.net.fc2))
        }

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.last_step = trainer.global_step
        for layer in (pl_module.net.fc1, pl_module.net.fc2):
            if is_pruned(layer):
                masked = layer.weight_mask == 0
                assert torch.count_nonzero(effective(layer)[masked]) == 0
                assert torch.count_nonzero(layer.weight_orig[masked]) == 0


def fit(root, callbacks, module=None, ckpt_path=None, max_epochs=3, **kwargs):
    L.seed_everything(0, verbose=False)
    module = module if module is not None else DecayModule()
    trainer = quiet_trainer(root, callbacks, max_epochs=max_epochs, **kwargs)
    trainer.fit(module, ckpt_path=ckpt_path)
    return module, trainer


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sparsity": 1.0, "epoch": 1}, r"Invalid sparsity: 1.0; expected a finite real number >= 0.0 and < 1.0$"),
        ({"sparsity": -0.5, "epoch": 1}, r"Invalid sparsity: -0.5"),
        ({"epoch": 1, "granularity": "channel"}, r"Invalid granularity: 'channel'"),
        ({}, r"Invalid epoch: None; with fine_tune=True, give the 0-based epoch"),
        ({"epoch": -1}, r"Invalid epoch: -1; expected an int >= 0$"),
        ({"epoch": 2, "fine_tune": False}, r"Invalid epoch: 2; with fine_tune=False pruning is at the last epoch"),
        ({"epoch": 1, "layers": []}, r"Invalid layers: \[\]"),
    ],
)
def test_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        OneShotMagnitudePruning(**kwargs)


def test_is_a_model_pruning_callback():
    pruner = OneShotMagnitudePruning(sparsity=0.5, epoch=1)
    assert isinstance(pruner, ModelPruning)
    assert pruner.state_key != OneShotMagnitudePruning(sparsity=0.5, epoch=2).state_key


def test_layer_filter_matching_nothing_fails_at_setup_naming_it(tmp_path):
    with pytest.raises(ValueError, match=r"Invalid layers entry: 'conv'; it matches no module"):
        fit(tmp_path, [OneShotMagnitudePruning(epoch=0, layers=["conv"])])


@pytest.mark.parametrize("granularity", ["weight", "filter"])
def test_prunes_exactly_the_fraction_at_the_epoch_then_fine_tunes(tmp_path, granularity):
    weights = {}

    class Snapshot(Callback):  # before the pruner: the weights it prunes
        def on_train_epoch_end(self, trainer, pl_module):
            if trainer.current_epoch == 1:
                weights["fc1"] = pl_module.net.fc1.weight.detach().clone()

    pruner = OneShotMagnitudePruning(sparsity=0.75, epoch=1, granularity=granularity, print_table=False)
    recorder = EpochRecorder()
    module, _ = fit(tmp_path, [Snapshot(), pruner, recorder])
    if granularity == "weight":
        want = {"fc1": round(0.75 * 128), "fc2": round(0.75 * 48)}
    else:  # whole rows: round(0.75 * 16) of 8 weights, round(0.75 * 3) of 16
        want = {"fc1": 12 * 8, "fc2": 2 * 16}
    assert recorder.zeros == {0: {"fc1": None, "fc2": None}, 1: want, 2: want}
    assert pruner.pruned_at_epoch == 1
    fc1 = module.net.fc1
    # the smallest magnitudes went: |w| per weight, or the L1 norm per row for filters
    scores = weights["fc1"].abs() if granularity == "weight" else weights["fc1"].abs().sum(dim=1, keepdim=True)
    threshold = scores.flatten().sort().values[(96 if granularity == "weight" else 12) - 1]
    assert torch.equal(fc1.weight_mask == 0, (scores <= threshold).expand_as(fc1.weight_mask))
    if granularity == "filter":
        rows = fc1.weight_mask.all(dim=1)
        assert torch.equal(rows, fc1.weight_mask.any(dim=1))
        assert torch.count_nonzero(effective(fc1, "bias")[~rows]) == 0  # the pruned channels' biases too
        assert [(r.filters, r.filters_removed) for r in pruner.report()] == [(16, 12), (3, 2)]
    # the same look as GReg's masks: names, order, buffers
    assert [n for n, _ in module.named_parameters()][:2] == [
        "net.fc1.weight_orig",
        "net.fc1.bias" + ("_orig" if granularity == "filter" else ""),
    ]


def test_without_fine_tuning_prunes_at_the_end_of_the_last_epoch(tmp_path):
    pruner = OneShotMagnitudePruning(sparsity=0.5, fine_tune=False, make_permanent=True, print_table=False)
    recorder = EpochRecorder()
    module = DecayModule()
    names = [n for n, _ in module.named_parameters()]
    module, trainer = fit(tmp_path, [pruner, recorder], module=module)
    assert pruner.pruned_at_epoch == 2 == trainer.max_epochs - 1
    assert recorder.zeros[1] == {"fc1": None, "fc2": None}
    assert recorder.zeros[2] == {"fc1": 64, "fc2": 24}
    assert recorder.last_step == trainer.global_step == 3 * BATCHES  # no optimizer step after the pruning
    # make_permanent: plain parameters again, in the old order, with the zeros baked in
    assert [n for n, _ in module.named_parameters()] == names
    assert int((module.net.fc1.weight == 0).sum()) == 64


def test_without_fine_tuning_needs_max_epochs(tmp_path):
    pruner = OneShotMagnitudePruning(fine_tune=False, print_table=False)
    with pytest.raises(ValueError, match=r"Invalid max_epochs: -1; OneShotMagnitudePruning\(fine_tune=False\)"):
        fit(tmp_path, [pruner], max_epochs=-1, max_steps=4)


def test_warns_when_it_never_prunes(tmp_path):
    with pytest.warns(UserWarning, match=r"epoch=5\) will never prune"):
        fit(tmp_path, [OneShotMagnitudePruning(epoch=5, print_table=False)], max_epochs=1)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("one_shot")
    ckpt = ModelCheckpoint(
        dirpath=root / "ckpt", filename="e{epoch}", auto_insert_metric_name=False, save_top_k=-1, every_n_epochs=1
    )
    module, _ = fit(root, [OneShotMagnitudePruning(sparsity=0.75, epoch=1, print_table=False), ckpt], max_epochs=4)
    return root / "ckpt", {k: v.clone() for k, v in module.state_dict().items()}


@pytest.mark.parametrize("ckpt", ["e0", "e1", "e2"])  # before, at and after the pruning epoch
def test_resume_into_a_fresh_model_continues_bit_for_bit_and_prunes_once(tmp_path, reference, ckpt):
    ckpt_dir, ref = reference
    pruner = OneShotMagnitudePruning(sparsity=0.75, epoch=1, print_table=False)
    recorder = EpochRecorder()
    module, _ = fit(tmp_path, [pruner, recorder], ckpt_path=ckpt_dir / f"{ckpt}.ckpt", max_epochs=4)
    assert pruner.pruned_at_epoch == 1
    assert all(z == {"fc1": 96, "fc2": 36} for e, z in recorder.zeros.items() if e >= 1)  # not pruned twice
    got = module.state_dict()
    assert got.keys() == ref.keys()
    for key in ref:
        assert torch.equal(got[key], ref[key]), key


def test_a_second_fit_with_the_same_callback_does_not_prune_again(tmp_path):
    pruner = OneShotMagnitudePruning(sparsity=0.75, epoch=1, print_table=False)
    module, _ = fit(tmp_path / "a", [pruner], max_epochs=2)
    recorder = EpochRecorder()
    fit(tmp_path / "b", [pruner, recorder], module=module, max_epochs=2)  # a new Trainer counts epochs from 0 again
    assert recorder.zeros == {0: {"fc1": 96, "fc2": 36}, 1: {"fc1": 96, "fc2": 36}}
