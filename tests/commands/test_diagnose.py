import json

import torch
from safetensors.torch import save_file

from lightning_grda.cli import main
from lightning_grda.models import ImageClassifier

FAST = [
    "--top_k=1",
    "--tol=1e-2",
    "--batches=2",
    "--hessian_batches=1",
    "--curve_epochs=0",
    "--curve_points=2",
    "--device=cpu",
]


def save_pair(tmp_path):
    paths = []
    for seed, name in ((1, "sgd.ckpt"), (2, "grda.safetensors")):  # a Lightning checkpoint and a safetensors file
        torch.manual_seed(seed)
        state = ImageClassifier("digits_cnn", num_classes=10, in_channels=1).state_dict()
        path = tmp_path / name
        if name.endswith("ckpt"):
            torch.save({"state_dict": state, "pytorch-lightning_version": "2.5"}, path)
        else:
            save_file(state, path)
        paths.append(path)
    return paths


def test_diagnose_command_writes_json_and_plots(tmp_path, capsys):
    sgd, grda = save_pair(tmp_path)
    out = tmp_path / "out"
    assert main(["diagnose", f"--sgd={sgd}", f"--grda={grda}", f"--output={out}", *FAST]) == 0
    result = json.loads((out / "diagnostics.json").read_text())
    assert len(result["share"]["share"]) == 1
    assert result["curve"]["t"] == [0.0, 1.0]
    assert (out / "share.png").stat().st_size > 0
    assert (out / "connectivity.png").stat().st_size > 0
    printed = capsys.readouterr().out
    assert "eigenvectors" in printed
    assert "paper: about 1e-03" in printed


def test_diagnose_command_bad_input(tmp_path, capsys):
    sgd, _ = save_pair(tmp_path)
    assert main(["diagnose", f"--sgd={sgd}", f"--grda={tmp_path / 'missing.pt'}", *FAST]) == 1
    assert "--grda: Invalid weights file" in capsys.readouterr().out
    other = tmp_path / "other.pt"
    torch.save(ImageClassifier("digits_cnn", num_classes=5, in_channels=1).state_dict(), other)
    assert main(["diagnose", f"--sgd={sgd}", f"--grda={other}", *FAST]) == 1
    assert "Invalid grda" in capsys.readouterr().out
