"""Tests for GReg and the shared mask structure (lightning_grda/pruning/masks.py, pruned_layers.py)."""

from __future__ import annotations

import csv

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.strategies import DDPStrategy
from rich.console import Console
from torch import nn

from lightning_grda.pruning.greg import GReg
from lightning_grda.pruning.greg_schedule import Phase
from lightning_grda.pruning.masks import is_pruned
from lightning_grda.sparsity import effective, pruning_table
from tests.helpers import TinyModule, flat_params, quiet_trainer, random_loader

# Resumed runs are given only the callbacks under test, not the ModelCheckpoints that wrote the checkpoint.
pytestmark = pytest.mark.filterwarnings("ignore:Be aware that when using `ckpt_path`:UserWarning")

BATCHES = 8  # TinyModule(n=64) with batch size 8: optimizer steps per epoch
LAYERS = ("net.fc1", "net.fc2")
# GReg-1: grow 0..11 (4 increments of 0.25, one every 3 steps), hold 12..19, prune at 20, fine-tune 21..
SMALL = dict(delta=0.25, update_interval=3, ceiling=1.0, hold_steps=8)
# GReg-2: pick 0..8 (0.05 every 3 steps to 0.15), grow 9..14 (0.15 + 0.5 k), hold 15..18, prune at 19
SMALL2 = dict(variant=2, pick_delta=0.05, pick_ceiling=0.15, delta=0.5, update_interval=3, ceiling=1.0, hold_steps=4)


class DecayModule(TinyModule):
    """TinyModule with SGD momentum 0.9 and weight decay: both move masked entries of weight_orig if left alone."""

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr, momentum=0.9, weight_decay=0.01)


class ConvModule(TinyModule):
    """A tiny conv net on random 1x4x4 images: filter pruning on real output channels."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(96, 3))

    def forward(self, x):
        return self.net(x.reshape(-1, 1, 4, 4))

    def train_dataloader(self):
        return random_loader(32, features=16)


class LossGrads(Callback):
    """Before GReg in the callbacks list: the loss gradients of each optimizer step, by parameter name."""

    def __init__(self) -> None:
        self.grads: dict[int, dict[str, torch.Tensor]] = {}

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        self.grads[trainer.global_step] = {n: p.grad.detach().clone() for n, p in pl_module.named_parameters()}


class Trace(Callback):
    """After GReg: (phase, lambda) each optimizer step uses, and the global step at which the masks appeared."""

    def __init__(self, greg: GReg) -> None:
        self.greg = greg
        self.steps: dict[int, tuple[int, float]] = {}
        self.grads: dict[int, dict[str, torch.Tensor]] = {}
        self.weights: dict[int, dict[str, torch.Tensor]] = {}
        self.masked_at: int | None = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self.masked_at is None and is_pruned(pl_module.net.fc1):
            self.masked_at = trainer.global_step

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        self.steps[trainer.global_step] = (int(self.greg.phase), self.greg.penalty)
        self.grads[trainer.global_step] = {n: p.grad.detach().clone() for n, p in pl_module.named_parameters()}
        self.weights[trainer.global_step] = {n: p.detach().clone() for n, p in pl_module.named_parameters()}


class ZeroCheck(Callback):
    """After every optimizer step: masked entries are exactly zero in the effective weight AND in weight_orig."""

    def __init__(self) -> None:
        self.checked = 0
        self.first: torch.Tensor | None = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        for layer in (pl_module.net.fc1, pl_module.net.fc2):
            if not is_pruned(layer):
                continue
            masked = layer.weight_mask == 0
            assert masked.any()
            assert torch.count_nonzero(effective(layer)[masked]) == 0
            assert torch.count_nonzero(layer.weight_orig[masked]) == 0
            self.checked += 1
            if self.first is None:
                self.first = effective(layer).clone()


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


def make_trainer(root, callbacks, max_epochs=4, logger=False, **kwargs) -> L.Trainer:
    return quiet_trainer(root, callbacks, max_epochs=max_epochs, logger=logger, **kwargs)


def fit(root, callbacks, module=None, ckpt_path=None, **kwargs):
    L.seed_everything(0, verbose=False)
    module = module if module is not None else TinyModule()
    trainer = make_trainer(root, callbacks, **kwargs)
    trainer.fit(module, ckpt_path=ckpt_path)
    return module, trainer


def state(module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items()}


# ----------------------------------------------------------------------------------------------------------------------
# arguments


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sparsity": 1.0}, r"Invalid sparsity: 1.0; expected a finite real number >= 0.0 and < 1.0$"),
        ({"sparsity": -0.1}, r"Invalid sparsity: -0.1"),
        ({"sparsity": "0.5"}, r"Invalid sparsity: '0.5'"),
        ({"delta": 0.0}, r"Invalid delta: 0.0; expected a finite real number > 0.0$"),
        ({"delta": -1e-4}, r"Invalid delta: -0.0001"),
        ({"variant": 3}, r"Invalid variant: 3; expected an int >= 1 and <= 2$"),
        ({"variant": True}, r"Invalid variant: True; expected an int"),
        ({"variant": 1.0}, r"Invalid variant: 1.0; expected an int"),
        ({"granularity": "channel"}, r"Invalid granularity: 'channel'; expected one of \('weight', 'filter'\)$"),
        ({"update_interval": 0}, r"Invalid update_interval: 0; expected an int >= 1$"),
        ({"hold_steps": -1}, r"Invalid hold_steps: -1; expected an int >= 0$"),
        ({"ceiling": 0}, r"Invalid ceiling: 0; expected a finite real number > 0.0$"),
        (
            {"variant": 2, "pick_ceiling": 1.0},
            r"Invalid pick_ceiling: 1.0; expected a finite real number > 0.0 and < 1.0$",
        ),
        ({"layers": []}, r"Invalid layers: \[\]"),
        ({"layers": ["fc1", "("]}, r"Invalid layers entry: '\('; expected a regular expression"),
        ({"layers": [3]}, r"Invalid layers entry: 3"),
    ],
)
def test_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GReg(**kwargs)


def test_layer_filter_matching_nothing_fails_at_setup_naming_it(tmp_path):
    greg = GReg(layers=["fc1", "conv"], **SMALL)
    with pytest.raises(ValueError, match=r"Invalid layers entry: 'conv'; it matches no module with a weight"):
        fit(tmp_path, [greg])


def test_state_key_tells_instances_apart():
    keys = {
        GReg().state_key,
        GReg(variant=2).state_key,
        GReg(sparsity=0.5).state_key,
        GReg(granularity="filter").state_key,
    }
    assert len(keys) == 4


# ----------------------------------------------------------------------------------------------------------------------
# phases


def test_phases_and_logs_follow_optimizer_steps_not_batches(tmp_path):
    accumulate = 2
    greg = GReg(**SMALL, print_table=False)
    trace = Trace(greg)
    logger = CSVLogger(tmp_path)
    module, trainer = fit(
        tmp_path,
        [greg, trace],
        max_epochs=3 * accumulate,
        logger=logger,
        log_every_n_steps=1,
        accumulate_grad_batches=accumulate,
    )
    s = greg.schedule
    assert trainer.global_step == 24
    assert trace.steps == {i: (int(s.phase_at(i)), s.lambda_at(i)) for i in range(24)}
    assert trace.masked_at == greg.pruned_at_step == 20
    assert greg.phase == Phase.FINE_TUNE
    assert greg.start_step == 0
    assert greg.picked_at_step == 0
    with open(f"{logger.log_dir}/metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r.get("greg/phase")]
    logged = {int(r["step"]): (float(r["greg/phase"]), float(r["greg/lambda"])) for r in rows}
    assert logged == {i: (float(s.phase_at(i)), s.lambda_at(i)) for i in range(24)}
    assert "greg/phase" in trainer.progress_bar_metrics


def test_warns_when_training_ends_before_pruning(tmp_path):
    with pytest.warns(UserWarning, match=r"GReg-1 will never prune: it prunes at optimizer step 20 but training stops"):
        fit(tmp_path, [GReg(**SMALL, print_table=False)], max_epochs=1, limit_train_batches=2)


# ----------------------------------------------------------------------------------------------------------------------
# penalty


def added_by_greg(loss: LossGrads, trace: Trace, step: int) -> dict[str, torch.Tensor]:
    return {n: trace.grads[step][n] - loss.grads[step][n] for n in trace.grads[step]}


def plain_loop_penalty(lam: float, weight: torch.Tensor, picked: torch.Tensor | None) -> torch.Tensor:
    """lambda * w on the picked entries (all entries if picked is None), element by element."""
    w = weight.flatten().tolist()
    p = [True] * len(w) if picked is None else picked.flatten().tolist()
    return torch.tensor([lam * wi if pi else 0.0 for wi, pi in zip(w, p)]).reshape(weight.shape)


@pytest.mark.parametrize("granularity", ["weight", "filter"])
def test_penalty_is_lambda_w_on_picked_entries_only(tmp_path, granularity):
    greg = GReg(**SMALL, sparsity=0.5, granularity=granularity, print_table=False)
    loss, trace = LossGrads(), Trace(greg)
    fit(tmp_path, [loss, greg, trace], max_epochs=3)
    for name in ("net.fc1.weight", "net.fc2.weight"):
        picked = greg.picked[name]
        rows = picked.reshape(picked.shape[0], -1)
        if granularity == "filter":  # whole rows, round(0.5 * rows) of them
            assert torch.equal(rows.all(dim=1), rows.any(dim=1))
            assert int(rows.all(dim=1).sum()) == round(0.5 * picked.shape[0])
        else:
            assert int(picked.sum()) == round(0.5 * picked.numel())
    for step in (0, 5, 13, 19, 20, 23):  # grow, grow, hold, hold, prune, fine-tune
        lam = greg.schedule.lambda_at(step)
        added = added_by_greg(loss, trace, step)
        for name, delta in added.items():
            key = name.replace("_orig", "")
            if key in greg.picked and lam:
                expected = plain_loop_penalty(lam, trace.weights[step][name], greg.picked[key])
                torch.testing.assert_close(delta, expected, rtol=1e-6, atol=1e-7)
                assert torch.count_nonzero(delta[~greg.picked[key]]) == 0
                assert torch.count_nonzero(delta[greg.picked[key]]) > 0
            else:  # no penalty: the norm, biases (weight granularity), and every parameter once pruned
                assert torch.count_nonzero(delta) == 0, (step, name)
    if granularity == "filter":  # a filter's bias entry is penalised with it
        assert set(greg.picked) == {"net.fc1.weight", "net.fc1.bias", "net.fc2.weight", "net.fc2.bias"}
    else:
        assert set(greg.picked) == {"net.fc1.weight", "net.fc2.weight"}


def test_greg2_penalises_all_weights_first_then_repicks_by_magnitude(tmp_path):
    greg = GReg(**SMALL2, sparsity=0.5, print_table=False)
    loss, trace = LossGrads(), Trace(greg)
    fit(tmp_path, [loss, greg, trace], max_epochs=3)
    s = greg.schedule
    assert greg.picked_at_step == s.pick_steps == 9
    assert greg.pruned_at_step == s.prune_step == 19
    for step in (0, 4, 8):  # PICK: every weight of the pruned layers, nothing else
        assert trace.steps[step] == (int(Phase.PICK), s.lambda_at(step))
        for name, delta in added_by_greg(loss, trace, step).items():
            if name.endswith("weight") and ".fc" in name:
                expected = plain_loop_penalty(s.lambda_at(step), trace.weights[step][name], None)
                torch.testing.assert_close(delta, expected, rtol=1e-6, atol=1e-7)
            else:
                assert torch.count_nonzero(delta) == 0, name
    # the re-pick at step 9 takes the smallest |w| of the weights the PICK phase left
    for name in ("net.fc1.weight", "net.fc2.weight"):
        w = trace.weights[9][name].abs().flatten()
        k = round(0.5 * w.numel())
        assert torch.equal(greg.picked[name].flatten(), w <= w.sort().values[k - 1])
    for step in (9, 14, 17):  # GROW from pick_ceiling, then HOLD: the picked weights only
        assert trace.steps[step][1] == s.lambda_at(step) > s.pick_ceiling
        added = added_by_greg(loss, trace, step)
        expected = plain_loop_penalty(
            s.lambda_at(step), trace.weights[step]["net.fc1.weight"], greg.picked["net.fc1.weight"]
        )
        torch.testing.assert_close(added["net.fc1.weight"], expected, rtol=1e-6, atol=1e-7)


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


# ----------------------------------------------------------------------------------------------------------------------
# resume: bit for bit from a checkpoint taken in any phase, into a fresh model


def epoch_checkpoints(dirpath) -> ModelCheckpoint:
    return ModelCheckpoint(
        dirpath=dirpath, filename="e{epoch}", auto_insert_metric_name=False, save_top_k=-1, every_n_epochs=1
    )


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    """Uninterrupted 4-epoch runs of GReg-1 (weight) and GReg-2 (filter), checkpointed at every epoch end."""
    out = {}
    for name, kwargs in (("greg1", SMALL), ("greg2", {**SMALL2, "granularity": "filter", "sparsity": 0.5})):
        root = tmp_path_factory.mktemp(name)
        greg = GReg(**kwargs, print_table=False)
        module, _ = fit(root, [greg, epoch_checkpoints(root / "ckpt")], module=DecayModule())
        out[name] = (root / "ckpt", kwargs, state(module), greg.state_dict())
    return out


@pytest.mark.parametrize(
    ("run", "ckpt", "phase"),
    [
        ("greg1", "e0", Phase.GROW),  # step 8
        ("greg1", "e1", Phase.HOLD),  # step 16
        ("greg1", "e2", Phase.FINE_TUNE),  # step 24
        ("greg2", "e0", Phase.PICK),  # step 8
        ("greg2", "e2", Phase.FINE_TUNE),  # step 24
    ],
)
def test_resume_in_any_phase_continues_bit_for_bit(tmp_path, references, run, ckpt, phase):
    ckpt_dir, kwargs, ref_state, ref_callback = references[run]
    saved = torch.load(ckpt_dir / f"{ckpt}.ckpt", weights_only=False)
    saved_state = next(v for k, v in saved["callbacks"].items() if k.startswith("GReg"))
    assert Phase(saved_state["phase"]) == phase
    greg = GReg(**kwargs, print_table=False)
    module, _ = fit(tmp_path, [greg], module=DecayModule(), ckpt_path=ckpt_dir / f"{ckpt}.ckpt")
    got = state(module)
    assert got.keys() == ref_state.keys()
    for key in ref_state:
        assert torch.equal(got[key], ref_state[key]), key
    callback_state = greg.state_dict()
    assert callback_state.keys() == ref_callback.keys()
    for key, value in ref_callback.items():
        if key == "picked":
            assert value.keys() == callback_state[key].keys()
            assert all(torch.equal(value[k], callback_state[key][k]) for k in value)
        else:
            assert callback_state[key] == value, key


# ----------------------------------------------------------------------------------------------------------------------
# DDP


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


def test_warmup_delays_the_pick_and_the_whole_schedule(tmp_path):
    warm = 8
    greg = GReg(**SMALL, warmup_steps=warm, print_table=False)
    trace = Trace(greg)
    _, trainer = fit(tmp_path, [greg, trace], max_epochs=4)
    s = greg.schedule
    assert trainer.global_step == 32
    expected = {i: (int(Phase.WARM_UP), 0.0) for i in range(warm)}
    expected |= {i: (int(s.phase_at(i - warm)), s.lambda_at(i - warm)) for i in range(warm, 32)}
    assert trace.steps == expected
    assert greg.picked_at_step == warm  # picked from weights trained for `warm` steps, not from the init
    assert trace.masked_at == greg.pruned_at_step == warm + s.prune_step
    for step in range(warm):  # no penalty during the warm-up: the gradients are the loss's alone
        assert trace.steps[step][1] == 0.0


def test_a_second_fit_of_a_pruned_greg_only_fine_tunes(tmp_path):
    greg = GReg(**SMALL, print_table=False)
    module, _ = fit(tmp_path / "a", [greg], max_epochs=3)
    assert greg.pruned_at_step == 20
    trace, zeros = Trace(greg), ZeroCheck()
    fit(tmp_path / "b", [greg, trace, zeros], module=module, max_epochs=2)
    assert set(trace.steps.values()) == {(int(Phase.FINE_TUNE), 0.0)}  # no penalty on the pruned model again
    assert zeros.checked > 0  # and the masks held through the second fit


def test_reusing_an_unpruned_greg_on_a_new_trainer_is_refused(tmp_path):
    greg = GReg(**SMALL, print_table=False)
    module, _ = fit(tmp_path / "a", [greg], max_epochs=1)  # 8 steps: growing, not pruned yet
    assert not greg.pruned
    greg.start_step = 5  # as if it had started mid-run: a new Trainer starts at step 0, before it
    with pytest.raises(RuntimeError, match=r"started at optimizer step 5 but training is at step 0"):
        fit(tmp_path / "b", [greg], module=module, max_epochs=1)


def test_greg2_uniform_penalty_leaves_filter_biases_alone(tmp_path):
    greg = GReg(**SMALL2, granularity="filter", layers=list(LAYERS), print_table=False)
    grads = LossGrads()
    trace = Trace(greg)
    fit(tmp_path, [grads, greg, trace], max_epochs=2)
    assert greg.schedule.pick_steps == 9
    for step in range(greg.schedule.pick_steps):
        for name in ("net.fc1.bias", "net.fc2.bias"):
            assert torch.equal(trace.grads[step][name], grads.grads[step][name])
        assert not torch.equal(trace.grads[step]["net.fc1.weight"], grads.grads[step]["net.fc1.weight"])
