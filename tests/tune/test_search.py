import math

import pytest

from lightning_grda.tune import Trial, search_c, trials_table
from tests.tune.fake_trials import SGD_ACC, fake


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
