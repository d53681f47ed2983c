import csv
import warnings

import pytest
import torch
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.strategies import DDPStrategy

from lightning_grda.callbacks.sparsity_monitor import SparsityMonitor
from lightning_grda.optim.grda import GRDA
from lightning_grda.sparsity import global_sparsity, sparsity_report
from tests.helpers import TinyModule

PARAMS = ["net.fc1.weight", "net.fc1.bias", "net.norm.weight", "net.norm.bias", "net.fc2.weight", "net.fc2.bias"]


class GRDAModule(TinyModule):
    """TinyModule trained with gRDA: weights in group 0, biases and the norm in group 1 with a smaller c."""

    def configure_optimizers(self):
        weights = [p for n, p in self.named_parameters() if n.endswith("weight") and "norm" not in n]
        others = [p for n, p in self.named_parameters() if not (n.endswith("weight") and "norm" not in n)]
        return GRDA([{"params": weights}, {"params": others, "c": 0.05}], lr=0.1, c=1.0, mu=0.55)


class Recorder(Callback):
    """After the monitor: the true global sparsity at each optimizer step, from an independent count."""

    def __init__(self):
        self.by_step = {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.by_step[trainer.global_step] = global_sparsity(pl_module.parameters())


class RankWriter(Callback):
    """Each rank saves its callback metrics and the warnings it saw, for the DDP test."""

    def __init__(self, path):
        self.path = path

    def setup(self, trainer, pl_module, stage):
        self._catcher = warnings.catch_warnings(record=True)
        self._warnings = self._catcher.__enter__()
        warnings.simplefilter("always")

    def on_fit_end(self, trainer, pl_module):
        self._catcher.__exit__(None, None, None)
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith(("sparsity", "grda"))}
        metrics["true"] = global_sparsity(pl_module)
        messages = [str(w.message) for w in self._warnings]
        torch.save({"metrics": metrics, "warnings": messages}, self.path / f"rank{trainer.global_rank}.pt")


def make_trainer(tmp_path, callbacks, **kwargs):
    defaults = dict(
        default_root_dir=tmp_path,
        max_epochs=1,
        limit_train_batches=4,
        limit_val_batches=0,
        enable_progress_bar=False,
        enable_model_summary=False,
        logger=CSVLogger(tmp_path),
        accelerator="cpu",
        deterministic=True,
        log_every_n_steps=1,
    )
    defaults.update(kwargs)
    return Trainer(callbacks=callbacks, **defaults)


def read_csv(trainer):
    with open(f"{trainer.logger.log_dir}/metrics.csv") as f:
        return list(csv.DictReader(f))


def f32(x):
    return torch.tensor(x, dtype=torch.float32).item()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"logging_interval": "batch"}, "Invalid logging_interval: 'batch'"),
        ({"logging_interval": None}, "Invalid logging_interval: None"),
        ({"log_every_n_steps": 0}, "Invalid log_every_n_steps: 0"),
        ({"log_every_n_steps": -3}, "Invalid log_every_n_steps: -3"),
        ({"log_every_n_steps": 2.0}, "Invalid log_every_n_steps: 2.0"),
        ({"log_every_n_steps": True}, "Invalid log_every_n_steps: True"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SparsityMonitor(**kwargs)


def test_epoch_interval_with_grda(tmp_path, capsys):
    model = GRDAModule()
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", monitor="sparsity", mode="max")
    trainer = make_trainer(
        tmp_path, [SparsityMonitor(), checkpoint], max_epochs=2, limit_val_batches=1, log_every_n_steps=1
    )
    trainer.fit(model)

    final = global_sparsity(model)
    assert final > 0.2  # gRDA pruned
    metrics = trainer.callback_metrics
    expected_keys = {"sparsity", "grda/threshold", "grda/threshold/group_1"} | {f"sparsity/{n}" for n in PARAMS}
    assert {k for k in metrics if k.startswith(("sparsity", "grda"))} == expected_keys
    assert metrics["sparsity"].item() == f32(final)
    report = sparsity_report(model)
    for row in report.rows:
        assert metrics[f"sparsity/{row.name}"].item() == f32(row.sparsity)
    thresholds = trainer.optimizers[0].group_thresholds()
    assert thresholds[0] > thresholds[1] > 0
    assert metrics["grda/threshold"].item() == f32(thresholds[0])
    assert metrics["grda/threshold/group_1"].item() == f32(thresholds[1])

    # validation ran before each train epoch end: the monitor still saw the current value
    assert checkpoint.best_model_score.item() == f32(final)

    rows = [r for r in read_csv(trainer) if r.get("sparsity")]
    assert [int(r["epoch"]) for r in rows] == [0, 1]  # once per epoch, no step rows
    assert float(rows[-1]["sparsity"]) == pytest.approx(final, abs=1e-7)
    assert float(rows[0]["sparsity"]) < float(rows[-1]["sparsity"])
    assert all(r[f"sparsity/{n}"] and r["grda/threshold"] and r["grda/threshold/group_1"] for r in rows for n in PARAMS)

    out = capsys.readouterr().out
    assert "Sparsity at the end of fit" in out
    assert sum(f"{n} " in out for n in PARAMS) == len(PARAMS)
    total = next(line for line in out.splitlines() if "Total" in line)
    assert f"{report.nonzeros:,}" in total
    assert f"{report.sparsity:.2%}" in total


def test_step_interval_values_match_the_step(tmp_path):
    model = GRDAModule()
    recorder = Recorder()
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", monitor="sparsity", mode="max")
    monitor = SparsityMonitor(logging_interval="step")
    trainer = make_trainer(tmp_path, [monitor, recorder, checkpoint], limit_train_batches=7, log_every_n_steps=2)
    trainer.fit(model)

    rows = [r for r in read_csv(trainer) if r.get("sparsity")]
    # Lightning writes the metrics of global step s at its step index s - 1
    assert [int(r["step"]) for r in rows] == [1, 3, 5]
    logged = [float(r["sparsity"]) for r in rows]
    assert logged == pytest.approx([recorder.by_step[s] for s in (2, 4, 6)], abs=1e-7)
    assert len(set(logged)) == 3  # each row is its own step's count
    assert all(r["sparsity/net.fc1.weight"] and r["grda/threshold"] for r in rows)
    # after the last logged step (6) the epoch end refreshed the monitored value for step 7
    assert recorder.by_step[7] != recorder.by_step[6]
    assert checkpoint.best_model_score.item() == f32(recorder.by_step[7])
    assert trainer.callback_metrics["sparsity"].item() == f32(recorder.by_step[7])


def test_step_interval_counts_once_per_optimizer_step(tmp_path, monkeypatch):
    import lightning_grda.callbacks.sparsity_monitor as module

    counted_at = []
    monkeypatch.setattr(
        module, "sparsity_report", lambda m: counted_at.append(m.trainer.global_step) or sparsity_report(m)
    )
    recorder = Recorder()
    monitor = SparsityMonitor(logging_interval="step", print_table=False)
    trainer = make_trainer(
        tmp_path, [monitor, recorder], limit_train_batches=8, accumulate_grad_batches=2, log_every_n_steps=2
    )
    trainer.fit(GRDAModule())
    # 4 optimizer steps: counted after steps 2 and 4 (not again on the accumulation batch), then at epoch end
    assert counted_at == [2, 4, 4]
    rows = [r for r in read_csv(trainer) if r.get("sparsity")]
    assert [int(r["step"]) for r in rows] == [1, 3]
    logged = [float(r["sparsity"]) for r in rows]
    assert logged == pytest.approx([recorder.by_step[2], recorder.by_step[4]], abs=1e-7)


def test_sgd_no_threshold_no_layers_no_table(tmp_path, capsys):
    model = TinyModule()
    trainer = make_trainer(tmp_path, [SparsityMonitor(per_layer=False, print_table=False)])
    trainer.fit(model)
    assert {k for k in trainer.callback_metrics if k.startswith(("sparsity", "grda"))} == {"sparsity"}
    assert trainer.callback_metrics["sparsity"].item() == f32(global_sparsity(model))
    assert "Sparsity" not in capsys.readouterr().out


def test_own_step_count_not_a_multiple_warns(tmp_path):
    trainer = make_trainer(
        tmp_path,
        [SparsityMonitor(logging_interval="step", log_every_n_steps=3)],
        limit_train_batches=1,
        log_every_n_steps=2,
    )
    with pytest.warns(UserWarning, match=r"log_every_n_steps=3\) is not a multiple of Trainer\(log_every_n_steps=2\)"):
        trainer.fit(TinyModule())


@pytest.mark.slow
def test_ddp_ranks_log_identical_sparsity(tmp_path):
    trainer = make_trainer(
        tmp_path,
        [SparsityMonitor(print_table=False), RankWriter(tmp_path)],
        strategy=DDPStrategy(process_group_backend="gloo", start_method="spawn"),
        devices=2,
        max_epochs=1,
        limit_val_batches=1,
        logger=False,
    )
    trainer.fit(GRDAModule())
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1)]
    m0, m1 = ranks[0]["metrics"], ranks[1]["metrics"]
    assert m0 == m1
    assert m0["true"] > 0
    assert m0["sparsity"] == f32(m0["true"])
    assert {"grda/threshold", "grda/threshold/group_1", "sparsity/net.fc1.weight"} <= m0.keys()
    # Lightning warns (on rank zero) about epoch-level values logged without sync_dist: not about ours
    assert not [w for w in ranks[0]["warnings"] if "sync_dist" in w and ("'sparsity" in w or "'grda" in w)]


def test_test_and_validate_report_the_sparsity_of_the_evaluated_weights(tmp_path):
    model = TinyModule()
    with torch.no_grad():
        model.net.fc1.weight[:, :4] = 0.0  # 64 zeros, plus the LayerNorm bias: 16 zeros at init; 227 in all
    trainer = Trainer(default_root_dir=tmp_path, callbacks=[SparsityMonitor()], logger=False, enable_progress_bar=False)
    expected = global_sparsity(model)
    assert expected == pytest.approx(80 / 227)
    (results,) = trainer.test(model, dataloaders=model.val_dataloader(), verbose=False)
    assert results["sparsity"] == pytest.approx(expected)
    assert trainer.callback_metrics["sparsity"].item() == pytest.approx(expected)
    (results,) = trainer.validate(model, dataloaders=model.val_dataloader(), verbose=False)
    assert results["sparsity"] == pytest.approx(expected)


FSDP2_SCRIPT = """
import sys

import torch
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.strategies import ModelParallelStrategy
from torch.distributed.fsdp import fully_shard

from lightning_grda import GRDAMixin, SparsityMonitor
from tests.helpers import TinyModule

out = sys.argv[1]


class Sharded(GRDAMixin, TinyModule):
    def train_dataloader(self):
        # Rank r takes samples r, r + 2, ...: each step the two ranks' batches of 8 are the next 16 samples.
        dataset = super().train_dataloader().dataset
        indices = range(self.global_rank, len(dataset), 2)
        return torch.utils.data.DataLoader(torch.utils.data.Subset(dataset, indices), batch_size=8)

    def configure_model(self):
        mesh = self.device_mesh["data_parallel"]
        fully_shard(self.net.fc1, mesh=mesh)
        fully_shard(self.net, mesh=mesh)


class Save(Callback):
    def on_fit_end(self, trainer, pl_module):
        full = [p.full_tensor() for p in pl_module.parameters()]  # a collective: every rank
        metrics = {k: v.item() for k, v in trainer.callback_metrics.items()}
        local = [tuple(p.to_local().shape) for p in pl_module.parameters()]
        torch.save({"metrics": metrics, "full": full, "local": local}, f"{out}/rank{trainer.global_rank}.pt")


trainer = Trainer(
    accelerator="cpu",
    devices=2,
    strategy=ModelParallelStrategy(data_parallel_size=2, tensor_parallel_size=1),
    max_epochs=2,
    callbacks=[SparsityMonitor(), Save()],
    logger=False,
    enable_checkpointing=False,
    enable_progress_bar=False,
    enable_model_summary=False,
    limit_val_batches=0,
    use_distributed_sampler=False,
)
torch.manual_seed(0)
trainer.fit(Sharded(grda_lr=0.1, grda_c=0.4, grda_mu=0.6, grda_exempt_norm_and_bias=True))
"""


@pytest.mark.slow
def test_fsdp2_logs_exact_sparsity_and_grda_matches_one_process(tmp_path):
    """Lightning's ModelParallelStrategy with FSDP2 on two CPU processes: every rank logs the exact global sparsity
    (counted over both ranks' shards), prints the table without a hang, and gRDA's weights match one process."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from lightning_grda import GRDAMixin

    root = Path(__file__).resolve().parents[2]
    script = tmp_path / "fsdp2_fit.py"
    script.write_text(FSDP2_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(root), "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path)], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Sparsity at the end of fit" in done.stdout
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1)]
    assert ranks[0]["local"] != ranks[1]["local"]  # the ranks held different shards

    # One process, the same samples per step: both ranks' batches of 8 are the first 16 samples of each 16.
    class Single(GRDAMixin, TinyModule):
        def train_dataloader(self):
            return torch.utils.data.DataLoader(super().train_dataloader().dataset, batch_size=16)

    torch.manual_seed(0)
    single = Single(grda_lr=0.1, grda_c=0.4, grda_mu=0.6, grda_exempt_norm_and_bias=True)
    trainer = make_trainer(tmp_path / "single", [], max_epochs=2, limit_val_batches=0, logger=False)
    trainer.fit(single)
    for r in ranks:
        for sharded, full in zip(r["full"], single.parameters(), strict=True):
            torch.testing.assert_close(sharded, full.detach(), rtol=0, atol=1e-6)
    truth = global_sparsity(single)
    assert truth > 0.2
    for r in ranks:
        assert r["metrics"]["sparsity"] == pytest.approx(truth, abs=1e-6)
        assert r["metrics"]["sparsity/net.fc1.weight"] == pytest.approx(tensor_zeros(single.net.fc1.weight), abs=1e-6)
    ours = [{k: v for k, v in r["metrics"].items() if k.startswith(("sparsity", "grda"))} for r in ranks]
    assert len(ours[0]) == 9  # sparsity, six parameters, grda/threshold and grda/threshold/group_1
    assert ours[0] == ours[1]


def tensor_zeros(t):
    return float((t == 0).float().mean())


def test_refuses_lightning_fsdp1():
    from types import SimpleNamespace

    from lightning.pytorch.strategies import FSDPStrategy

    trainer = SimpleNamespace(strategy=FSDPStrategy(), log_every_n_steps=50)
    with pytest.raises(ValueError, match=r"Invalid strategy: FSDPStrategy\. SparsityMonitor .*ModelParallelStrategy"):
        SparsityMonitor().setup(trainer, TinyModule(), "fit")


class CollapsingModule(TinyModule):
    """fc1's weight is driven to exact zeros at once (a huge c on its group); the rest barely prunes."""

    def configure_optimizers(self):
        fc1 = [self.net.fc1.weight]
        rest = [p for p in self.parameters() if p is not self.net.fc1.weight]
        return GRDA([{"params": fc1, "c": 1e3}, {"params": rest}], lr=0.1, c=0.0, mu=0.55)


def test_a_collapsed_layer_is_warned_once_naming_it(tmp_path):
    trainer = make_trainer(tmp_path, [SparsityMonitor(print_table=False)], max_epochs=3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(CollapsingModule())
    collapsed = [str(w.message) for w in caught if "collapsed" in str(w.message)]
    assert len(collapsed) == 1, collapsed  # three epochs, one warning
    assert "net.fc1.weight" in collapsed[0]
    assert "lower c" in collapsed[0]


def test_no_collapse_warning_for_an_all_zero_bias(tmp_path):
    model = TinyModule(lr=0.0)  # nothing moves: the bias stays all zeros
    torch.nn.init.zeros_(model.net.fc1.bias)
    trainer = make_trainer(tmp_path, [SparsityMonitor(print_table=False)], limit_train_batches=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(model)
    assert not [w for w in caught if "collapsed" in str(w.message)]


def test_the_table_explains_biases_and_norm_weights(tmp_path, capsys):
    trainer = make_trainer(tmp_path, [SparsityMonitor()], limit_train_batches=1)
    trainer.fit(GRDAModule())
    out = " ".join(capsys.readouterr().out.split())
    assert "biases start at 0" in out
    assert "exempt_norm_and_bias=True" in out
