import math

import pytest
import yaml

from lightning_grda.cli import main
from lightning_grda.tune import Trial, plot_search, read_trials, search_c, trials_table, tune_c, write_trial

SGD_ACC = 0.95


def fake(limit: float, *, calls: list[float] | None = None, bad: set[float] = frozenset(), crash_above=math.inf):
    """A trial whose accuracy drops past ``limit``; ``bad`` c values fail although small (non-monotone)."""

    def trial(c: float) -> Trial:
        if calls is not None:
            calls.append(c)
        if c > crash_above:
            raise RuntimeError("loss is nan")
        drop = c > limit or any(math.isclose(c, b) for b in bad)
        return Trial(c, 0.6, 1, SGD_ACC - (0.2 if drop else 0.0), min(1.0, 10 * c))

    return trial


def test_monotone_search_brackets_then_bisects():
    calls = []
    result = search_c(fake(0.02, calls=calls), tolerance=1.0, max_trials=10)
    assert calls[0] == 0.0  # the SGD reference first, once
    assert calls[1:5] == pytest.approx([1e-4, 1e-3, 1e-2, 1e-1])
    assert result.bracketed
    assert result.contradictions == []
    assert 0.016 <= result.best <= 0.02  # within the resolution (1.25) of the true limit
    assert len(result.trials) <= 10


def test_all_pass_chooses_the_largest_tried_unbracketed():
    result = search_c(fake(math.inf), max_trials=4)
    assert [t.c for t in result.trials] == pytest.approx([1e-4, 1e-3, 1e-2, 1e-1])
    assert result.best == pytest.approx(0.1)
    assert not result.bracketed


def test_all_fail_chooses_nothing():
    result = search_c(fake(0.0), max_trials=3)
    assert [t.c for t in result.trials] == pytest.approx([1e-4, 1e-5, 1e-6])
    assert result.best is None


def test_non_monotone_trials_are_reported():
    trial = fake(0.05, bad={1e-3})  # 1e-3 fails, though 1e-2 passes
    lenient = search_c(trial, tolerance=100.0, max_trials=3)
    assert [t.c for t in lenient.trials] == pytest.approx([1e-4, 1e-3, 1e-2])
    calls = []
    strict = search_c(fake(0.05, bad={1e-3}, calls=calls), max_trials=5, done=[lenient.reference, *lenient.trials])
    assert strict.contradictions == [(pytest.approx(1e-2), pytest.approx(1e-3))]
    assert len(calls) == 2
    assert all(1e-4 < c < 1e-3 for c in calls)
    assert 1e-4 < strict.best < 1e-3
    assert "contradicts monotonicity" in str([str(c._cells) for c in trials_table(strict, 1.0).columns])


def test_a_crashing_trial_is_failed_and_too_large():
    result = search_c(fake(1.0, crash_above=0.005), max_trials=6)
    failed = [t for t in result.trials if t.status == "failed"]
    assert failed
    assert all(t.c > 0.005 for t in failed)
    assert "RuntimeError: loss is nan" in failed[0].note
    assert result.best is not None
    assert result.best <= 0.005


def test_a_non_finite_accuracy_is_failed():
    def trial(c):
        return Trial(c, 0.6, 1, math.nan if c > 0.05 else SGD_ACC, 0.1)

    result = search_c(trial, max_trials=8)
    assert any(t.status == "failed" for t in result.trials)
    assert result.best < 0.1


def test_the_reference_must_succeed():
    with pytest.raises(ValueError, match="reference trial"):
        search_c(fake(1.0, crash_above=-1.0), max_trials=2)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"tolerance": -1.0}, "Invalid tolerance: -1.0"), ({"max_trials": 0}, "Invalid max_trials: 0")],
)
def test_bad_arguments_before_any_trial(kwargs, match):
    calls = []
    with pytest.raises(ValueError, match=match):
        search_c(fake(1.0, calls=calls), **kwargs)
    assert calls == []


def test_resume_from_a_partial_trials_csv_redoes_no_trial(tmp_path):
    calls = []
    first = tune_c(None, tmp_path, mu=0.6, epochs=1, max_trials=3, trial=fake(0.02, calls=calls))
    assert len(calls) == 4
    rows = (tmp_path / "trials.csv").read_text().splitlines()
    assert rows[0] == "c,mu,epochs,val_acc,sparsity,seconds,status,note"
    assert len(rows) == 5
    (tmp_path / "trials.csv").write_text("\n".join(rows[:4]) + "\n")  # as if interrupted after two c > 0 trials
    calls.clear()
    again = tune_c(None, tmp_path, mu=0.6, epochs=1, max_trials=6, trial=fake(0.02, calls=calls))
    assert calls[0] == pytest.approx(1e-2)  # the reference and the first trial were read back
    assert [t.c for t in again.trials[:3]] == pytest.approx([t.c for t in first.trials])
    assert len(read_trials(tmp_path / "trials.csv", mu=0.6, epochs=1)) == 7
    assert read_trials(tmp_path / "trials.csv", mu=0.55) == []  # another mu: nothing reused
    assert (tmp_path / "c_search.png").stat().st_size > 0


def test_table_and_plot(tmp_path):
    result = search_c(fake(0.02, crash_above=0.05), max_trials=6)
    write_trial(tmp_path / "t.csv", result.trials[0])
    table = trials_table(result, 1.0)
    assert table.row_count == 1 + len(result.trials)
    assert plot_search(result, 1.0, tmp_path / "p.png").stat().st_size > 0


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--tolerance=-1"], "Invalid tolerance: -1.0"),
        (["--max_trials=0"], "Invalid max_trials: 0"),
        (["--mu=0"], "Invalid mu: 0.0"),
        (["--mu=-0.5"], "Invalid mu: -0.5"),
        (["--epochs=0"], "Invalid epochs: 0"),
    ],
)
def test_tune_c_command_refuses_bad_arguments_before_any_trial(args, match, tmp_path):
    with pytest.raises(ValueError, match=match):
        main(["tune-c", *args, f"--output={tmp_path}"])
    assert not (tmp_path / "trials.csv").exists()


def test_tune_c_command_refuses_a_config_without_grda(tmp_path):
    from lightning_grda.cli import CONFIG_DIR

    with pytest.raises(ValueError, match="replaces the model's GRDA"):
        main(["tune-c", f"--config={CONFIG_DIR / 'digits_sgd.yaml'}", f"--output={tmp_path}"])


@pytest.mark.slow  # three real CLI runs (the parse check, SGD, one trial): about 10 s on 2 idle cores
def test_tune_c_real_short_search_on_digits(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["tune-c", "--epochs=1", "--max_trials=1", "--start=0.001", "--tolerance=100", "--output=out"]
    quick = ["--trainer.limit_train_batches=2", "--trainer.limit_val_batches=1", "--trainer.enable_progress_bar=false"]
    assert main([*args, *quick]) == 0
    trials = read_trials(tmp_path / "out" / "trials.csv")
    assert [t.c for t in trials] == pytest.approx([0.0, 1e-3])  # the SGD reference, then the start
    best = yaml.safe_load((tmp_path / "out" / "best.yaml").read_text())
    assert best["model"]["init_args"]["c"] == pytest.approx(1e-3)  # tolerance 100: it passes
    assert best["trainer"]["max_epochs"] == 30  # the config's, not the trials'
    assert (tmp_path / "out" / "c_search.png").exists()
