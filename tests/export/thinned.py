"""A thinned model the export tests share: the digits CNN with dead channels, and its thinner copy."""

import torch
from torch import nn

from lightning_grda.export import thin
from lightning_grda.models.backbones import build_backbone


def thinned_digits_cnn() -> tuple[nn.Module, nn.Module]:
    """The digits CNN (eval mode) with 20 first-layer channels zeroed (conv weight, BN weight and bias), and its thinned
    copy, which keeps the other 12."""
    torch.manual_seed(0)
    model = build_backbone("digits_cnn", num_classes=10).eval()
    with torch.no_grad():
        model.features[0].weight[:20] = 0
        model.features[1].weight[:20] = 0
        model.features[1].bias[:20] = 0
    small, _ = thin(model, torch.randn(1, 1, 8, 8))
    assert small.features[0].out_channels == 12
    return model, small
