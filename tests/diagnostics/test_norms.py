import math

import pytest
import torch

from lightning_grda.diagnostics import norm_ratio


def test_norm_ratio_against_hand_values():
    assert norm_ratio({"a": torch.tensor([3.0]), "b": torch.tensor([[-4.0]])}) == pytest.approx(5 / 7)
    assert norm_ratio({"w": torch.ones(100)}) == pytest.approx(1 / math.sqrt(100))
    assert norm_ratio({"w": torch.tensor([0.0, 0.0, 2.0])}) == pytest.approx(1.0)


def test_names_select_tensors_and_integers_are_skipped():
    state = {"w": torch.tensor([1.0, 1.0]), "big": torch.tensor([100.0]), "count": torch.tensor(7)}
    assert norm_ratio(state, ["w"]) == pytest.approx(math.sqrt(2) / 2)
    assert norm_ratio({"w": torch.tensor([1.0, 1.0]), "count": torch.tensor(7)}) == pytest.approx(math.sqrt(2) / 2)


def test_all_zero_weights():
    with pytest.raises(ValueError, match="Invalid state: 'all zeros'"):
        norm_ratio({"w": torch.zeros(3)})
