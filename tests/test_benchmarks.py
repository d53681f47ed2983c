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
