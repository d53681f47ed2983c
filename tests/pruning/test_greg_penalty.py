"""GReg's penalty: lambda * w added to the gradient of the picked weights only, GReg-2's uniform phase first."""

from __future__ import annotations

import pytest
import torch

from lightning_grda.pruning.greg import GReg
from lightning_grda.pruning.greg_schedule import Phase
from tests.pruning.greg_harness import LAYERS, SMALL, SMALL2, LossGrads, Trace, fit

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
