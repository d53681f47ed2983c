"""Classification backbones for the paper's experiments and the embedded digits job, built by name.

* ``digits_cnn``: a small CNN for scikit-learn's 1x8x8 handwritten digits (the embedded default job).
* ``vgg16``: VGG16 without batch normalisation for 32x32 CIFAR images, as in the gRDA paper's CIFAR-10 runs
  (Simonyan & Zisserman, ICLR 2015, configuration "D").
* ``wrn28_10``: Wide ResNet 28-10 for CIFAR (Zagoruyko & Komodakis, *Wide Residual Networks*, BMVC 2016).
* ``resnet20``: the CIFAR ResNet-20 (He, Zhang, Ren, Sun, *Deep Residual Learning*, CVPR 2016, section 4.2).
* ``resnet50``: torchvision's ResNet-50 for ImageNet, randomly initialised (never downloads weights).

Architectures are written from the papers; no code was taken from other repositories. Blocks torchvision already
has (ResNet's ``BasicBlock``, ResNet-50 itself) are reused.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, Literal

import torch
import torch.nn.functional as F  # noqa: N812
import torchvision
from torch import nn
from torchvision.models.resnet import BasicBlock

from lightning_grda.checks import check_choice, check_int, check_real, invalid

__all__ = ["BACKBONES", "CifarResNet", "DigitsCNN", "VGG16", "WideResNet", "build_backbone"]

# Configuration "D" of Simonyan & Zisserman (2015): the 13 conv3x3 layers' channels in 5 stages, each stage ending in
# a 2x2 max-pool (64, 64, M, 128, 128, M, 256, 256, 256, M, 512, 512, 512, M, 512, 512, 512, M).
_VGG16_STAGES: tuple[tuple[int, ...], ...] = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))


class DigitsCNN(nn.Module):
    """A small CNN for 8x8 images such as scikit-learn's handwritten digits (90,090 parameters for 10 classes).

    ``[conv3x3(32)-BN-ReLU, conv3x3(64)-BN-ReLU, maxpool2, conv3x3(64)-BN-ReLU, maxpool2] -> Linear(256, 128)-ReLU
    -> Linear(128, num_classes)``; the convs have no bias (the BN after each one has it).

    Batch normalisation, because the embedded job trains it with plain SGD (no momentum) at ``lr = 0.1`` and batch
    64: with it the model reaches ~98-99 % test accuracy on the digits in about five epochs whatever the input scaling
    (raw 0-16 pixels, 0-1, or standardised); without it training at that ``lr`` is slower and noisier (~97-98 % after
    eight epochs, and a slow start with torch's default init). gRDA prunes the BN parameters like any other, as the
    paper does for ResNet-50. The ~90k parameters leave gRDA plenty of redundancy on a 1,797-image dataset.

    Args:
        num_classes: number of output logits.
        in_channels: channels of the input images (1 for the digits).

    Example:
        >>> model = DigitsCNN(num_classes=10)
        >>> model(torch.zeros(2, 1, 8, 8)).shape
        torch.Size([2, 10])
        >>> sum(p.numel() for p in model.parameters())
        90090
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1) -> None:
        check_int("num_classes", num_classes, low=1)
        check_int("in_channels", in_channels, low=1)
        super().__init__()
        self.features = nn.Sequential(
            *_conv_bn_relu(in_channels, 32),
            *_conv_bn_relu(32, 64),
            nn.MaxPool2d(2),  # 8x8 -> 4x4
            *_conv_bn_relu(64, 64),
            nn.MaxPool2d(2),  # 4x4 -> 2x2
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(64 * 2 * 2, 128),
            nn.ReLU(inplace=True),
            nn.Linear(128, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of shape ``(batch, num_classes)`` for images of shape ``(batch, in_channels, 8, 8)``."""
        return self.classifier(self.features(x))


def _conv_bn_relu(in_channels: int, out_channels: int) -> tuple[nn.Module, nn.Module, nn.Module]:
    """``conv3x3 (no bias, same padding) -> BatchNorm2d -> ReLU``."""
    return (
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class VGG16(nn.Module):
    """VGG16 for 32x32 images, without batch normalisation (14,719,818 parameters for 10 classes).

    The 13 conv3x3 layers of configuration "D" (each followed by ReLU, five 2x2 max-pools), then a single
    ``Linear(512, num_classes)``. After five poolings a 32x32 image is a 1x1x512 feature, so the 4096-wide
    two-hidden-layer head of the ImageNet VGG (and torchvision's ``VGG``, whose head expects 7x7 features) would only
    add ~120M mostly redundant parameters; the single linear head is the common CIFAR VGG16 (14.7M parameters).

    Initialisation: Kaiming normal (``fan_in``, ReLU gain) for the conv weights, ``N(0, 0.01)`` for the linear
    weight, zero biases. Without batch normalisation a 13-layer ReLU stack trained at ``lr = 0.1`` needs an init that
    keeps the forward signal at unit scale; ``fan_in`` does that (``fan_out``, torchvision's choice for VGG,
    shrinks it at the 3 -> 64 stem and at every channel doubling), and the small head weight makes the first
    loss ``~log(num_classes)``.

    Args:
        num_classes: number of output logits.
        in_channels: channels of the input images (3 for CIFAR).

    Example:
        >>> model = VGG16(num_classes=10)
        >>> any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
        False
        >>> model(torch.zeros(2, 3, 32, 32)).shape
        torch.Size([2, 10])
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 3) -> None:
        check_int("num_classes", num_classes, low=1)
        check_int("in_channels", in_channels, low=1)
        super().__init__()
        # Hand-written rather than torchvision's ``make_layers``: that helper is not public API (not in
        # ``torchvision.models.vgg.__all__``) and fixes the input to 3 channels.
        layers: list[nn.Module] = []
        channels = in_channels
        for stage in _VGG16_STAGES:
            for width in stage:
                layers += [nn.Conv2d(channels, width, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
                channels = width
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(512, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of shape ``(batch, num_classes)`` for images of shape ``(batch, in_channels, 32, 32)``."""
        return self.classifier(torch.flatten(self.features(x), 1))


def _init_residual(module: nn.Module) -> None:
    """He initialisation for the convolutions of a residual network (as torchvision's ResNet), unit batch norms."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class _WideBasicBlock(nn.Module):
    """Pre-activation basic block of a Wide ResNet: ``BN-ReLU-conv3x3-BN-ReLU-dropout-conv3x3`` plus a shortcut.

    When the shape changes, the shortcut is a 1x1 conv applied, like the first conv, to the pre-activated input
    (as in the paper's reference implementation); otherwise it is the identity on the raw input.
    """

    def __init__(self, in_planes: int, planes: int, stride: int, dropout: float) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.shortcut: nn.Module | None = None
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Conv2d(in_planes, planes, kernel_size=1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block."""
        pre = F.relu(self.bn1(x))
        out = self.conv2(self.dropout(F.relu(self.bn2(self.conv1(pre)))))
        return out + (x if self.shortcut is None else self.shortcut(pre))


class WideResNet(nn.Module):
    """Wide ResNet ``WRN-depth-widen_factor`` for 32x32 images (Zagoruyko & Komodakis, 2016).

    A conv3x3 stem with 16 channels, three groups of ``(depth - 4) / 6`` pre-activation basic blocks with
    ``16k, 32k, 64k`` channels (``k = widen_factor``; strides 1, 2, 2), then BN-ReLU, global average pooling and a
    linear layer. Convolutions have no bias; conv weights are Kaiming normal (``fan_out``), BN weights 1 and biases
    0. WRN-28-10 has 36,479,194 parameters for 10 classes and 36,536,884 for 100. Written here because torchvision
    has no pre-activation block.

    Args:
        depth: total depth, ``6n + 4`` with ``n >= 1`` blocks per group (28 for WRN-28-10).
        widen_factor: channel multiplier ``k >= 1``.
        num_classes: number of output logits.
        dropout: dropout probability between the two convs of each block (the paper's 0.3 variant; 0 disables).
        in_channels: channels of the input images (3 for CIFAR).

    Example:
        >>> model = WideResNet(depth=10, widen_factor=1, num_classes=10)
        >>> model(torch.zeros(2, 3, 32, 32)).shape
        torch.Size([2, 10])
    """

    def __init__(
        self, depth: int = 28, widen_factor: int = 10, num_classes: int = 10, dropout: float = 0.0, in_channels: int = 3
    ) -> None:
        if check_int("depth", depth, low=10) % 6 != 4:
            raise invalid("depth", depth, "6n + 4 with n >= 1 (10, 16, 22, 28, ...)")
        check_int("widen_factor", widen_factor, low=1)
        check_int("num_classes", num_classes, low=1)
        check_real("dropout", dropout, low=0.0, high=1.0, high_open=True)
        check_int("in_channels", in_channels, low=1)
        super().__init__()
        blocks_per_group = (depth - 4) // 6
        widths = (16 * widen_factor, 32 * widen_factor, 64 * widen_factor)
        self.conv1 = nn.Conv2d(in_channels, 16, kernel_size=3, stride=1, padding=1, bias=False)
        groups: list[nn.Module] = []
        in_planes = 16
        for width, stride in zip(widths, (1, 2, 2)):
            blocks = []
            for i in range(blocks_per_group):
                blocks.append(_WideBasicBlock(in_planes, width, stride if i == 0 else 1, dropout))
                in_planes = width
            groups.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = groups
        self.bn = nn.BatchNorm2d(in_planes)
        self.fc = nn.Linear(in_planes, num_classes)
        _init_residual(self)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of shape ``(batch, num_classes)`` for images of shape ``(batch, in_channels, H, W)``."""
        out = self.layer3(self.layer2(self.layer1(self.conv1(x))))
        out = F.adaptive_avg_pool2d(F.relu(self.bn(out)), 1)
        return self.fc(torch.flatten(out, 1))


class _PadShortcut(nn.Module):
    """He et al.'s parameter-free shortcut "option A": subsample spatially and zero-pad the new channels."""

    def __init__(self, extra_channels: int, stride: int) -> None:
        super().__init__()
        self.extra_channels = extra_channels
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Subsample ``x`` by ``stride`` and append ``extra_channels`` zero channels."""
        return F.pad(x[:, :, :: self.stride, :: self.stride], (0, 0, 0, 0, 0, self.extra_channels))


class CifarResNet(nn.Module):
    """The CIFAR ResNet of He et al. (2016, section 4.2): ``6n + 2`` layers, 16/32/64 channels (ResNet-20: n = 3).

    A conv3x3-BN-ReLU stem with 16 channels, three stages of ``n`` torchvision ``BasicBlock`` s (strides 1, 2, 2),
    global average pooling and a linear layer. The two shortcuts that change shape are, by default, the paper's
    parameter-free option A (subsample and zero-pad channels; the paper's CIFAR choice): ResNet-20 then has 269,722
    parameters for 10 classes. ``shortcut="conv"`` makes them option B (1x1 conv + BN, as in torchvision's ImageNet
    ResNets and several CIFAR model zoos): 272,474 parameters. Both are the paper's "0.27M". torchvision's ``ResNet``
    class has the ImageNet stem and 64-512 channels, hence this small wrapper around its ``BasicBlock``.

    Args:
        depth: ``6n + 2`` with ``n >= 1`` (20 for ResNet-20).
        num_classes: number of output logits.
        in_channels: channels of the input images (3 for CIFAR).
        shortcut: ``"pad"`` (option A) or ``"conv"`` (option B) for the shortcuts that change shape.

    Example:
        >>> sum(p.numel() for p in CifarResNet(depth=20, num_classes=10).parameters())
        269722
        >>> sum(p.numel() for p in CifarResNet(depth=20, num_classes=10, shortcut="conv").parameters())
        272474
    """

    def __init__(
        self, depth: int = 20, num_classes: int = 10, in_channels: int = 3, shortcut: Literal["pad", "conv"] = "pad"
    ) -> None:
        if check_int("depth", depth, low=8) % 6 != 2:
            raise invalid("depth", depth, "6n + 2 with n >= 1 (8, 14, 20, 32, 44, 56, ...)")
        check_choice("shortcut", shortcut, ("pad", "conv"))
        check_int("num_classes", num_classes, low=1)
        check_int("in_channels", in_channels, low=1)
        super().__init__()
        blocks_per_stage = (depth - 2) // 6
        self.conv1 = nn.Conv2d(in_channels, 16, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        stages: list[nn.Module] = []
        in_planes = 16
        for planes, stride in zip((16, 32, 64), (1, 2, 2)):
            blocks = []
            for i in range(blocks_per_stage):
                s = stride if i == 0 else 1
                downsample: nn.Module | None = None
                if s != 1 or in_planes != planes:
                    downsample = (
                        _PadShortcut(planes - in_planes, s)
                        if shortcut == "pad"
                        else nn.Sequential(
                            nn.Conv2d(in_planes, planes, kernel_size=1, stride=s, bias=False), nn.BatchNorm2d(planes)
                        )
                    )
                blocks.append(BasicBlock(in_planes, planes, stride=s, downsample=downsample))
                in_planes = planes
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.fc = nn.Linear(64, num_classes)
        _init_residual(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of shape ``(batch, num_classes)`` for images of shape ``(batch, in_channels, H, W)``."""
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(out, 1), 1))


def _resnet50(num_classes: int, in_channels: int = 3, **kwargs: Any) -> nn.Module:
    """ResNet-50 from torchvision with random weights; a new stem conv when ``in_channels != 3``."""
    check_int("num_classes", num_classes, low=1)
    check_int("in_channels", in_channels, low=1)
    model = torchvision.models.resnet50(weights=None, num_classes=num_classes, **kwargs)
    if in_channels != 3:
        model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    return model


# name -> (factory(*, num_classes, in_channels, **kwargs), the architecture's natural number of input channels)
_FACTORIES: dict[str, tuple[Callable[..., nn.Module], int]] = {
    "digits_cnn": (DigitsCNN, 1),
    "vgg16": (VGG16, 3),
    "wrn28_10": (partial(WideResNet, depth=28, widen_factor=10), 3),
    "resnet20": (partial(CifarResNet, depth=20), 3),
    "resnet50": (_resnet50, 3),
}

BACKBONES: tuple[str, ...] = tuple(_FACTORIES)
"""The names :func:`build_backbone` accepts."""


def build_backbone(name: str, num_classes: int, in_channels: int | None = None, **kwargs: Any) -> nn.Module:
    """Build a randomly initialised classification backbone by name.

    =============  ===========  ==========================================================
    name           input        architecture
    =============  ===========  ==========================================================
    ``digits_cnn`` 1 x 8 x 8    :class:`DigitsCNN` (~90k parameters)
    ``vgg16``      3 x 32 x 32  :class:`VGG16`, no batch norm (14.7M)
    ``wrn28_10``   3 x 32 x 32  :class:`WideResNet` ``(depth=28, widen_factor=10)`` (36.5M)
    ``resnet20``   3 x 32 x 32  :class:`CifarResNet` ``(depth=20)`` (0.27M)
    ``resnet50``   3 x 224^2    ``torchvision.models.resnet50(weights=None)`` (25.6M)
    =============  ===========  ==========================================================

    Args:
        name: one of :data:`BACKBONES`.
        num_classes: number of output logits, at least 1.
        in_channels: channels of the input images; ``None`` takes the architecture's own (1 for ``digits_cnn``,
            3 for the others).
        **kwargs: further arguments of the architecture, e.g. ``dropout=0.3`` for ``wrn28_10`` or
            ``shortcut="conv"`` for ``resnet20``, ``zero_init_residual=True`` for ``resnet50``.

    Returns:
        The model, mapping ``(batch, in_channels, H, W)`` images to ``(batch, num_classes)`` logits.

    Raises:
        ValueError: for an unknown ``name``, or ``num_classes`` / ``in_channels`` below 1.

    Example:
        >>> model = build_backbone("digits_cnn", num_classes=10)
        >>> model(torch.zeros(2, 1, 8, 8)).shape
        torch.Size([2, 10])
        >>> build_backbone("vgg19", num_classes=10)
        Traceback (most recent call last):
            ...
        ValueError: Unknown backbone: 'vgg19'; expected one of 'digits_cnn', 'vgg16', 'wrn28_10', 'resnet20', 'resnet50'
    """
    if name not in _FACTORIES:
        raise ValueError(f"Unknown backbone: {name!r}; expected one of {_quoted(BACKBONES)}")
    check_int("num_classes", num_classes, low=1)
    factory, default_channels = _FACTORIES[name]
    if in_channels is None:
        in_channels = default_channels
    check_int("in_channels", in_channels, low=1)
    return factory(num_classes=num_classes, in_channels=in_channels, **kwargs)


def _quoted(names: Sequence[str]) -> str:
    """``'a', 'b', 'c'``."""
    return ", ".join(repr(n) for n in names)
