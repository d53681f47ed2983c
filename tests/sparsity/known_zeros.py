"""What the sparsity tests count against: a plain loop, and a TinyNet with hand-counted zeros."""

import torch

from tests.helpers import TinyNet


def loop_zeros(t: torch.Tensor) -> int:
    """Independent reference: a plain Python loop over the elements."""
    return sum(1 for v in t.flatten().tolist() if v == 0)


def sparse_tinynet() -> TinyNet:
    """TinyNet (fc1 16x8 + 16, norm 16 + 16, fc2 3x16 + 3: 227 parameters) with known zeros."""
    torch.manual_seed(0)
    net = TinyNet()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.rand_like(p) + 0.5)  # no accidental zeros
        net.fc1.weight[:10].zero_()  # 80 zeros
        net.fc1.bias[:3] = -0.0  # 3 zeros (negative zero is a zero)
        net.norm.weight[0] = float("nan")  # not a zero
        net.fc2.weight[:, :4].zero_()  # 12 zeros
    return net
