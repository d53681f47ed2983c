import pytest
import torch

from lightning_grda.diagnostics import bezier_point, evaluate_path, line_point, train_bezier
from tests.diagnostics.tiny import TinyClassifier, batches


def params_of(seed: int, bn: bool = False) -> dict:
    torch.manual_seed(seed)
    return {k: v.detach().clone() for k, v in TinyClassifier(bn=bn).named_parameters()}


@pytest.mark.parametrize("bn", [False, True])
def test_curve_endpoints_are_the_weight_sets_exactly(bn):
    module = TinyClassifier(bn=bn)
    w0, w1 = params_of(1, bn), params_of(2, bn)
    theta = train_bezier(module, w0, w1, batches(), epochs=2)
    assert set(theta) == set(w0)
    for t, end in ((0.0, w0), (1.0, w1)):
        for point in (bezier_point(w0, theta, w1, t), line_point(w0, w1, t, w0)):
            for k in w0:
                assert torch.equal(point[k], end[k])
    # and the endpoints of the evaluated path are the losses of the two weight sets
    curve = evaluate_path(module, lambda t: bezier_point(w0, theta, w1, t), batches(), points=3)
    for t, end in ((0, w0), (-1, w1)):
        m = TinyClassifier(bn=bn)
        m.load_state_dict(end, strict=False)
        ref = evaluate_path(m, lambda _, e=end: e, batches(), points=2)
        assert curve.loss[t] == pytest.approx(ref.loss[0], rel=1e-6)
    assert curve.t == [0.0, 0.5, 1.0]
    assert all(0.0 <= a <= 1.0 for a in curve.accuracy)


def test_curve_between_identical_weights_is_flat():
    module = TinyClassifier(bn=True)
    w = params_of(1, bn=True)
    theta = train_bezier(module, w, w, batches(), epochs=0)  # the control point starts at the midpoint: w itself
    for k in w:
        assert torch.equal(theta[k], w[k])
    curve = evaluate_path(module, lambda t: bezier_point(w, theta, w, t), batches(), points=5)
    line = evaluate_path(module, lambda t: line_point(w, w, t, w), batches(), points=5)
    for path in (curve, line):
        assert path.loss == pytest.approx([path.loss[0]] * 5, rel=1e-6)
        assert path.accuracy == [path.accuracy[0]] * 5


def test_training_lowers_the_midpoint_loss():
    module = TinyClassifier()
    w0, w1 = params_of(1), params_of(2)
    mid = {k: (w0[k] + w1[k]) / 2 for k in w0}
    before = evaluate_path(module, lambda t: bezier_point(w0, mid, w1, t), batches(), points=3).loss[1]
    theta = train_bezier(module, w0, w1, batches(), epochs=20, lr=0.1)
    after = evaluate_path(module, lambda t: bezier_point(w0, theta, w1, t), batches(), points=3).loss[1]
    assert after < before


def test_module_is_not_changed_and_bad_arguments():
    module = TinyClassifier(bn=True)
    before = {k: v.clone() for k, v in module.state_dict().items()}
    w0, w1 = params_of(1, True), params_of(2, True)
    theta = train_bezier(module, w0, w1, batches(), epochs=1)
    evaluate_path(module, lambda t: bezier_point(w0, theta, w1, t), batches(), points=2)
    for k, v in module.state_dict().items():
        assert torch.equal(v, before[k])
    with pytest.raises(ValueError, match="Invalid points: 1; expected an int >= 2"):
        evaluate_path(module, lambda t: w0, batches(), points=1)
    with pytest.raises(ValueError, match="Invalid lr: 0.0"):
        train_bezier(module, w0, w1, batches(), lr=0.0)
