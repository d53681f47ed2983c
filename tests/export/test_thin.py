import pytest
import torch
from torch import nn

from lightning_grda.export import thin
from lightning_grda.models.backbones import CifarResNet, WideResNet, build_backbone


def _kill(model, fraction=0.5, seed=0, bn_shift=0.0):
    """Zero the output filters of every conv/linear but the last, and their BN's scale and shift (``bn_shift``)."""
    g = torch.Generator().manual_seed(seed)
    mods = list(model.modules())
    layers = [m for m in mods if isinstance(m, nn.Conv2d | nn.Linear)][:-1]
    with torch.no_grad():
        for i, m in enumerate(mods):
            if m in layers:
                dead = torch.rand(m.weight.shape[0], generator=g) < fraction
                m.weight[dead] = 0
                if m.bias is not None:
                    m.bias[dead] = 0
                nxt = mods[i + 1] if i + 1 < len(mods) else None
                if isinstance(nxt, nn.BatchNorm2d | nn.BatchNorm1d) and nxt.num_features == len(dead):
                    nxt.weight[dead] = 0
                    nxt.bias[dead] = bn_shift
    return model.eval()


def _check(model, shape, removed=True):
    x = torch.randn(2, *shape)
    small, report = thin(model, x[:1])
    y = torch.randn(3, *shape)
    with torch.no_grad():
        assert (small(y) - model(y)).abs().max() <= 1e-5
    assert (report.params_after < report.params_before) == removed
    return small, report


@pytest.mark.parametrize(
    ("make", "shape"),
    [
        (lambda: build_backbone("digits_cnn", num_classes=10), (1, 8, 8)),
        (lambda: CifarResNet(depth=8, num_classes=10), (3, 8, 8)),
        (lambda: WideResNet(depth=10, widen_factor=1, num_classes=10), (3, 8, 8)),
        (lambda: build_backbone("vgg16", num_classes=10), (3, 32, 32)),
    ],
    ids=["digits_cnn", "resnet8", "wrn10_1", "vgg16"],
)
def test_backbones_with_random_dead_channels(make, shape):
    torch.manual_seed(0)
    _check(_kill(make()), shape)


@pytest.mark.slow
def test_resnet50_at_a_tiny_input():
    torch.manual_seed(0)
    _check(_kill(build_backbone("resnet50", num_classes=10), fraction=0.3), (3, 32, 32))


def test_dead_only_after_bn_and_relu_is_removed():
    torch.manual_seed(0)
    model = _kill(build_backbone("digits_cnn", num_classes=10), bn_shift=-0.5)
    small, report = _check(model, (1, 8, 8))
    assert small.features[0].out_channels < 32


def test_nonzero_constant_channels_are_kept():
    torch.manual_seed(0)
    model = _kill(build_backbone("digits_cnn", num_classes=10), bn_shift=0.5)  # relu(0.5): a live constant
    small, report = _check(model, (1, 8, 8))
    assert small.features[0].out_channels == 32
    assert small.features[3].out_channels == 64


def test_channels_no_consumer_reads_are_removed():
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
    with torch.no_grad():
        net[2].weight[:, :5] = 0
    small, _ = _check(net, (4,))
    assert small[0].out_features == 3


def test_nothing_dead_changes_nothing():
    torch.manual_seed(0)
    model = build_backbone("digits_cnn", num_classes=10).eval()
    small, report = _check(model, (1, 8, 8), removed=False)
    assert all(removed == 0 for _, _, removed in report.layers)
    assert "Dead channels removed" in report.table().title
    assert "parameters 90,090 -> 90,090" in report.summary()


def test_untraceable_model_names_it():
    class Untraceable(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            return {"logits": self.fc(x), "note": "text"}  # a non-tensor output its tracer cannot follow

    with pytest.raises(ValueError, match="Torch-Pruning could not trace Untraceable"):
        thin(Untraceable(), torch.randn(1, 4))
