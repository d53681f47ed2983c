import json

import pytest
import torch

from lightning_grda.diagnostics import diagnose, plot_all, report
from tests.diagnostics.tiny import NoLoss, TinyClassifier, batches


def two_states(bn=True):
    out = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        out.append(TinyClassifier(bn=bn).state_dict())
    return out


def test_diagnose_end_to_end(tmp_path):
    sgd, grda = two_states()
    result = diagnose(TinyClassifier(bn=True), sgd, grda, batches(), top_k=3, curve_epochs=1, curve_points=3)
    json.dumps(result)  # JSON-ready
    assert len(result["hessian"]["eigenvalues"]) == 3
    assert result["hessian"]["eigenvalues"] == sorted(result["hessian"]["eigenvalues"], reverse=True)
    share = result["share"]["share"]
    assert result["share"]["k"] == [1, 2, 3]
    assert all(0 <= a <= b <= 1 for a, b in zip(share, share[1:]))
    assert result["curve"]["loss"][0] == pytest.approx(result["line"]["loss"][0])
    assert result["curve"]["loss"][-1] == pytest.approx(result["line"]["loss"][-1])
    assert result["summary"]["curve_max_loss"] == max(result["curve"]["loss"])
    assert set(result["norm_ratio"]) == {"sgd", "grda"}
    assert report(result) is not None
    assert [p.name for p in plot_all(result, tmp_path)] == ["share.png", "connectivity.png"]
    assert all((tmp_path / n).stat().st_size > 0 for n in ("share.png", "connectivity.png"))


def test_mismatched_checkpoints():
    sgd, _ = two_states(bn=True)
    grda = TinyClassifier(hidden=6, bn=True).state_dict()
    with pytest.raises(ValueError, match=r"Invalid grda: 'fc1.weight of shape \(6, 4\)'; expected shape \(5, 4\)"):
        diagnose(TinyClassifier(bn=True), sgd, grda, batches(), top_k=1)
    other = TinyClassifier(bn=False).state_dict()
    with pytest.raises(ValueError, match=r"Invalid sgd: .*missing \['bn.weight'"):
        diagnose(TinyClassifier(bn=True), other, grda, batches(), top_k=1)


def test_top_k_larger_than_parameter_count():
    sgd, grda = two_states()
    n = sum(p.numel() for p in TinyClassifier(bn=True).parameters())
    with pytest.raises(ValueError, match=rf"Invalid top_k: 1000; expected an int >= 1 and <= {n - 1}"):
        diagnose(TinyClassifier(bn=True), sgd, grda, batches(), top_k=1000)


def test_training_step_without_loss():
    sgd, grda = two_states()
    with pytest.raises(ValueError, match="NoLoss.training_step returned NoneType, not the loss"):
        diagnose(NoLoss(bn=True), sgd, grda, batches(), top_k=1)
