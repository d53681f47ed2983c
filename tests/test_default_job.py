"""The embedded default keeps its promise: >= 90 % sparsity, test accuracy at most 0.5 points below SGD's."""

import pytest

from lightning_grda.cli import CONFIG_DIR, main

QUIET = [
    "--trainer.enable_progress_bar=false",
    "--trainer.enable_model_summary=false",
    "--trainer.logger=false",
    "--trainer.enable_checkpointing=false",
]


@pytest.mark.slow
def test_default_job_meets_its_targets(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    grda = main(["fit", *QUIET]).trainer.callback_metrics  # exactly `lightning-grda fit`, quieter
    sgd = main(["fit", f"--config={CONFIG_DIR / 'digits_sgd.yaml'}", *QUIET]).trainer.callback_metrics
    assert float(sgd["sparsity"]) < 0.01
    assert float(grda["sparsity"]) >= 0.90
    assert float(grda["test_acc"]) >= float(sgd["test_acc"]) - 0.005
