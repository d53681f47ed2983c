from __future__ import annotations

import pytest
import torch
from torch import nn

from lightning_grda.models.backbones import BACKBONES, VGG16, CifarResNet, DigitsCNN, WideResNet, build_backbone

# One input shape per registered name (C, H, W); resnet50 is fully convolutional, so 64x64 keeps it fast.
INPUT_SHAPES = {
    "digits_cnn": (1, 8, 8),
    "vgg16": (3, 32, 32),
    "wrn28_10": (3, 32, 32),
    "resnet20": (3, 32, 32),
    "resnet50": (3, 64, 64),
}
# WRN-28-10 has 36M parameters: its forward is checked on a small WideResNet of the same code instead.
FORWARD_NAMES = [name for name in BACKBONES if name != "wrn28_10"]


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def build_on_meta(*args, **kwargs) -> nn.Module:
    """Build without allocating or initialising real storage: counting parameters of the big models stays fast."""
    with torch.device("meta"):
        return build_backbone(*args, **kwargs)


@pytest.fixture(scope="module")
def vgg16() -> VGG16:
    torch.manual_seed(0)
    return VGG16(num_classes=10)


def test_every_backbone_has_an_input_shape_here():
    assert set(INPUT_SHAPES) == set(BACKBONES)
    assert len(BACKBONES) == len(set(BACKBONES))


@pytest.mark.parametrize("name", FORWARD_NAMES)
def test_forward_gives_one_logit_per_class(name):
    torch.manual_seed(0)
    model = build_backbone(name, num_classes=7).eval()
    with torch.no_grad():
        out = model(torch.randn(2, *INPUT_SHAPES[name]))
    assert out.shape == (2, 7)
    assert torch.isfinite(out).all()


def test_small_wide_resnet_forward_and_backward():
    torch.manual_seed(0)
    model = WideResNet(depth=10, widen_factor=1, num_classes=5)
    out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 5)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize(
    ("name", "num_classes", "kwargs", "expected"),
    [
        ("resnet50", 1000, {}, 25_557_032),  # torchvision's documented count
        ("wrn28_10", 10, {}, 36_479_194),  # Zagoruyko & Komodakis' 36.5M
        ("wrn28_10", 100, {}, 36_536_884),
        ("vgg16", 10, {}, 14_719_818),
        ("resnet20", 10, {}, 269_722),  # option A shortcuts (He et al.'s CIFAR choice)
        ("resnet20", 10, {"shortcut": "conv"}, 272_474),  # option B: two 1x1 conv + BN projections, 2,752 more
        ("digits_cnn", 10, {}, 90_090),
    ],
)
def test_parameter_count_matches_reference(name, num_classes, kwargs, expected):
    assert n_params(build_on_meta(name, num_classes, **kwargs)) == expected


def test_vgg16_conv_part_matches_closed_form(vgg16):
    widths = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
    expected = sum(9 * c_in * c_out + c_out for c_in, c_out in zip([3, *widths[:-1]], widths))
    assert expected == 14_714_688
    assert n_params(vgg16.features) == expected


def test_vgg16_has_thirteen_conv3x3_five_pools_and_no_batch_norm(vgg16):
    convs = [m for m in vgg16.modules() if isinstance(m, nn.Conv2d)]
    assert [m.out_channels for m in convs] == [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
    assert all(m.kernel_size == (3, 3) and m.padding == (1, 1) for m in convs)
    assert sum(isinstance(m, nn.MaxPool2d) for m in vgg16.modules()) == 5
    assert not any(isinstance(m, nn.modules.batchnorm._NormBase) for m in vgg16.modules())
    assert isinstance(vgg16.classifier, nn.Linear)
    assert vgg16.classifier.in_features == 512


def test_vgg16_init_is_kaiming_fan_in_with_small_head(vgg16):
    convs = [m for m in vgg16.modules() if isinstance(m, nn.Conv2d)]
    for conv in (convs[0], convs[-1]):
        fan_in = conv.in_channels * 9
        assert conv.weight.std().item() == pytest.approx((2.0 / fan_in) ** 0.5, rel=0.1)
        assert not conv.bias.any()
    assert vgg16.classifier.weight.std().item() == pytest.approx(0.01, rel=0.1)
    assert not vgg16.classifier.bias.any()


def test_wide_resnet_structure():
    model = build_on_meta("wrn28_10", 100)
    groups = [model.layer1, model.layer2, model.layer3]
    assert [len(g) for g in groups] == [4, 4, 4]
    assert [g[0].conv1.out_channels for g in groups] == [160, 320, 640]
    assert [g[0].conv1.stride for g in groups] == [(1, 1), (2, 2), (2, 2)]
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    # stem + 2 per block + a 1x1 shortcut at the first block of each group; 28 = stem + 24 block convs + 2 (BN, FC).
    assert len(convs) == 1 + 24 + 3
    assert all(m.bias is None for m in convs)
    assert model.fc.out_features == 100
    assert not any(isinstance(m, nn.Dropout) for m in model.modules())


def test_wide_resnet_blocks_are_pre_activation():
    torch.manual_seed(0)
    model = WideResNet(depth=10, widen_factor=1, num_classes=3)
    block = model.layer1[0]
    order = []
    hooks = [m.register_forward_hook(lambda mod, i, o: order.append(type(mod).__name__)) for m in block.children()]
    block(torch.randn(2, 16, 8, 8))
    for h in hooks:
        h.remove()
    assert order[:2] == ["BatchNorm2d", "Conv2d"]  # BN (then ReLU) comes before the first conv


def test_wide_resnet_dropout_is_forwarded():
    model = build_on_meta("wrn28_10", 10, dropout=0.3)
    dropouts = [m for m in model.modules() if isinstance(m, nn.Dropout)]
    assert len(dropouts) == 12
    assert all(m.p == 0.3 for m in dropouts)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"depth": 27}, "Invalid depth: 27"),
        ({"depth": 4}, "Invalid depth: 4"),
        ({"widen_factor": 0}, "Invalid widen_factor: 0"),
        ({"dropout": 1.0}, "Invalid dropout: 1.0"),
        ({"dropout": -0.1}, "Invalid dropout: -0.1"),
    ],
)
def test_wide_resnet_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        WideResNet(**kwargs)


def test_cifar_resnet20_structure():
    model = CifarResNet(depth=20)
    assert [len(s) for s in (model.layer1, model.layer2, model.layer3)] == [3, 3, 3]
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 19  # + the FC layer: 20 weighted layers, and option A shortcuts add no conv
    assert [m.out_channels for m in convs][::6] == [16, 16, 32, 64]


def test_cifar_resnet_pad_shortcut_zero_pads_new_channels():
    block = CifarResNet(depth=8).layer2[0]
    x = torch.randn(2, 16, 8, 8)
    out = block.downsample(x)
    assert out.shape == (2, 32, 4, 4)
    torch.testing.assert_close(out[:, :16], x[:, :, ::2, ::2])
    assert not out[:, 16:].any()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"depth": 18}, "Invalid depth: 18"),
        ({"shortcut": "B"}, "Invalid shortcut: 'B'"),
    ],
)
def test_cifar_resnet_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CifarResNet(**kwargs)


@pytest.mark.parametrize(
    ("name", "default_channels"), [("digits_cnn", 1), ("vgg16", 3), ("wrn28_10", 3), ("resnet20", 3), ("resnet50", 3)]
)
def test_in_channels_default_and_override(name, default_channels):
    def first_conv(model):
        return next(m for m in model.modules() if isinstance(m, nn.Conv2d))

    assert first_conv(build_on_meta(name, 10)).in_channels == default_channels
    assert first_conv(build_on_meta(name, 10, in_channels=2)).in_channels == 2


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="Unknown backbone: 'vgg19'; expected one of") as info:
        build_backbone("vgg19", num_classes=10)
    for name in BACKBONES:
        assert repr(name) in str(info.value)


@pytest.mark.parametrize("num_classes", [0, -3, 2.5, True])
def test_bad_num_classes_is_rejected(num_classes):
    with pytest.raises(ValueError, match=rf"Invalid num_classes: {num_classes!r}"):
        build_backbone("digits_cnn", num_classes=num_classes)


def test_bad_in_channels_is_rejected():
    with pytest.raises(ValueError, match="Invalid in_channels: 0"):
        build_backbone("resnet20", num_classes=10, in_channels=0)


def test_unknown_keyword_is_rejected():
    with pytest.raises(TypeError, match="dropout"):
        build_backbone("digits_cnn", num_classes=10, dropout=0.5)


def test_digits_cnn_overfits_a_small_batch_with_plain_sgd():
    torch.manual_seed(0)
    x, y = torch.rand(32, 1, 8, 8) * 16, torch.randint(0, 10, (32,))  # raw 0-16 pixel scale, as in the dataset
    model = DigitsCNN(num_classes=10)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    losses = []
    for _ in range(20):
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0]
    model.eval()
    with torch.no_grad():
        assert (model(x).argmax(1) == y).float().mean() >= 0.9
