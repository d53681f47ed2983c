import pytest

from lightning_grda.tune import read_trials, tune_c
from tests.tune.fake_trials import fake


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
