import pytest
import torch

from lightning_grda.export import thin
from lightning_grda.export.onnx import check_onnx, save_onnx
from lightning_grda.models.backbones import build_backbone

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


def test_thinned_digits_cnn_runs_under_onnxruntime(tmp_path):
    torch.manual_seed(0)
    model = build_backbone("digits_cnn", num_classes=10).eval()
    with torch.no_grad():
        model.features[0].weight[:20] = 0
        model.features[1].weight[:20] = 0
        model.features[1].bias[:20] = 0
    small, _ = thin(model, torch.randn(1, 1, 8, 8))
    assert small.features[0].out_channels == 12
    diff = save_onnx(small, torch.randn(1, 1, 8, 8), tmp_path / "m.onnx")
    assert diff <= 1e-4
    assert check_onnx(model, tmp_path / "m.onnx", torch.randn(5, 1, 8, 8)) <= 1e-4  # dynamic batch, same function
