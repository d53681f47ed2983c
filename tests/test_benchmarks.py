"""The benchmark scripts run (on tiny settings: these are smoke tests, no timing is asserted)."""

import importlib.util
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load(name):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_optimizer_prints_ratios(capsys):
    load("bench_optimizer").main(["--repeats", "1", "--no-fused"])
    out = capsys.readouterr().out
    assert "SGD(momentum=0.9)" in out
    assert "GRDA" in out
    assert "check only (one read of every gradient)" in out


def test_bench_training_prints_ratios(capsys):
    load("bench_training").main(["--repeats", "2"])
    out = capsys.readouterr().out
    assert "digits_cnn" in out
    assert "resnet20" in out


@pytest.mark.slow
def test_compare_digits_runs_every_method(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["compare_digits.py"])
    module = load("compare_digits")
    results = module.main_(["--max-epochs", "1", "--limit-train-batches", "2", "--out", str(tmp_path / "cmp")])
    assert [name for name, _ in results][0] == "grda"
    assert {name for name, _ in results} == set(module.METHODS)
    assert (tmp_path / "cmp.md").read_text().count("\n") == len(module.METHODS) + 2


def test_diagnose_digits_prints_the_headline_figures(tmp_path, capsys, monkeypatch):
    import torch

    from lightning_grda.models import ImageClassifier

    monkeypatch.setattr(sys, "argv", ["diagnose_digits.py"])
    paths = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        paths.append(tmp_path / f"w{seed}.pt")
        torch.save(ImageClassifier("digits_cnn", num_classes=10, in_channels=1).state_dict(), paths[-1])
    tiny = [
        "--top_k",
        "1",
        "--tol",
        "1e-2",
        "--batches",
        "2",
        "--hessian_batches",
        "1",
        "--curve_epochs",
        "0",
        "--curve_points",
        "2",
    ]
    load("diagnose_digits").main_(["--sgd", str(paths[0]), "--grda", str(paths[1]), "--out", str(tmp_path), *tiny])
    out = capsys.readouterr().out
    assert "share of ||w_gRDA - w_SGD||^2 on the top 1:" in out
    assert "Bezier curve max loss" in out
    assert (tmp_path / "diagnostics.json").exists()
