"""GReg's arguments, phases and lifecycle across fits (lightning_grda/pruning/greg.py)."""

from __future__ import annotations

import csv

import pytest
from lightning.pytorch.loggers import CSVLogger

from lightning_grda.pruning.greg import GReg
from lightning_grda.pruning.greg_schedule import Phase
from tests.pruning.greg_harness import SMALL, Trace, ZeroCheck, fit

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
# warm-up, and a second fit


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
