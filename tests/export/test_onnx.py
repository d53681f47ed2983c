import pytest
import torch

from lightning_grda.export.onnx import check_onnx, save_onnx
from tests.export.thinned import thinned_digits_cnn

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


def test_thinned_digits_cnn_runs_under_onnxruntime(tmp_path):
    model, small = thinned_digits_cnn()
    diff = save_onnx(small, torch.randn(1, 1, 8, 8), tmp_path / "m.onnx")
    assert diff <= 1e-4
    assert check_onnx(model, tmp_path / "m.onnx", torch.randn(5, 1, 8, 8)) <= 1e-4  # dynamic batch, same function
