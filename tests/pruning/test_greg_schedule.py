"""Tests for GReg's schedule as pure functions (lightning_grda/pruning/greg_schedule.py)."""

import pytest

from lightning_grda.pruning.greg_schedule import GRegSchedule, Phase
from tests.pruning.greg_harness import SMALL, SMALL2


def test_schedule_matches_hand_computed_sequences():
    s1 = GRegSchedule(variant=1, **{k: v for k, v in SMALL.items()})
    hand1 = [0.25] * 3 + [0.5] * 3 + [0.75] * 3 + [1.0] * 3 + [1.0] * 8 + [0.0] * 4
    phases1 = [1] * 12 + [2] * 8 + [3] + [4] * 3
    assert [s1.lambda_at(i) for i in range(24)] == hand1
    assert [int(s1.phase_at(i)) for i in range(24)] == phases1
    assert (s1.pick_steps, s1.grow_steps, s1.hold_start, s1.prune_step) == (0, 12, 12, 20)

    s2 = GRegSchedule(**SMALL2)
    hand2 = [0.05] * 3 + [0.1] * 3 + [0.15] * 3 + [0.65] * 3 + [1.0] * 3 + [1.0] * 4 + [0.0] * 2
    phases2 = [0] * 9 + [1] * 6 + [2] * 4 + [3] + [4]
    assert [s2.lambda_at(i) for i in range(21)] == pytest.approx(hand2, rel=1e-12)
    assert [int(s2.phase_at(i)) for i in range(21)] == phases2
    # the paper's CIFAR schedule: 10,000 increments of 1e-4 every 10 steps, then 10k steps of hold
    paper = GRegSchedule(delta=1e-4, update_interval=10, ceiling=1.0, hold_steps=10_000)
    assert (paper.grow_steps, paper.prune_step) == (100_000, 110_000)
    assert paper.lambda_at(99_999) == 1.0
    assert paper.lambda_at(9) == 1e-4
    assert paper.lambda_at(10) == 2e-4


def test_describe_says_each_phase_with_its_numbers():
    s2 = GRegSchedule(**SMALL2)  # pick 0..8, grow 9..14, hold 15..18, prune at 19
    start = 8  # after an 8-step warm-up
    assert [s2.describe(phase, start, "filter", 0.5) for phase in Phase] == [
        "plain training until step 8, then the weights to prune are picked from the trained ones",
        "a uniform penalty on all weights grows by 0.05 every 3 steps to 0.15 (until step 17)",
        "the penalty on the picked weights grows by 0.5 every 3 steps to 1 (until step 23)",
        "the penalty holds at 1 for 4 steps",
        "the picked filters are masked to zero (50.0% per layer)",
        "fine-tuning with the masks held",
    ]
