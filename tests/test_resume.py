"""Resume of a shipped job after a real crash (SIGKILL) is bit for bit, with the training shuffle on."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest
import torch

from lightning_grda.cli import main

# digits, 129 per batch: 11 batches per epoch; 20 steps; a checkpoint every 5 steps; the lr drop at epoch 1
CONFIG = """
trainer:
  max_epochs: 100
  max_steps: 20
  logger: false
  enable_progress_bar: false
  enable_model_summary: false
  limit_val_batches: 0
  num_sanity_val_steps: 0
  callbacks:
    - class_path: lightning_grda.callbacks.OneTimeLRDrop
      init_args: {epoch: 1, factor: 0.1}
    - class_path: lightning.pytorch.callbacks.ModelCheckpoint
      init_args: {dirpath: DIR, every_n_train_steps: 5, save_last: true, save_top_k: -1}
data:
  init_args: {batch_size: 129}
test_after_fit: false
"""


def _config(tmp_path, name: str):
    folder = tmp_path / name
    folder.mkdir(exist_ok=True)
    config = folder / "resume.yaml"
    config.write_text(CONFIG.replace("DIR", str(folder / "ckpt")))
    return config


def _fit(tmp_path, name: str, *extra: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "lightning_grda", "fit", f"--config={_config(tmp_path, name)}", *extra]
    return subprocess.run(command, cwd=tmp_path / name, capture_output=True, text=True, timeout=300)


def _state(path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


@pytest.mark.slow  # two CLI processes and one in-process run of 20 steps each
def test_resume_after_sigkill_mid_epoch_is_bit_for_bit(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    main(["fit", f"--config={_config(tmp_path, 'whole')}"])  # uninterrupted, in this process (no import cost)

    # step 17 is batch 6 of epoch 1; the last checkpoint before it is step 15 (batch 4 of epoch 1: mid-epoch)
    killed = _fit(tmp_path, "killed", "--trainer.callbacks+=tests.helpers.KillAtStep", "--trainer.callbacks.step=17")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    last = tmp_path / "killed" / "ckpt" / "last.ckpt"
    assert _state(last)["global_step"] == 15
    assert _state(last)["loops"]["fit_loop"]["state_dict"]["combined_loader"] == [
        {"epoch": 1, "batches": 4, "batch_size": 129}
    ]
    resumed = _fit(tmp_path, "killed", f"--ckpt_path={last}")
    assert resumed.returncode == 0, resumed.stderr[-2000:]

    expected = _state(tmp_path / "whole" / "ckpt" / "last.ckpt")
    got = _state(last)
    assert got["global_step"] == expected["global_step"] == 20
    assert expected["state_dict"].keys() == got["state_dict"].keys()
    for name, tensor in expected["state_dict"].items():
        assert torch.equal(tensor, got["state_dict"][name]), name
    for a, b in zip(expected["optimizer_states"][0]["state"].values(), got["optimizer_states"][0]["state"].values()):
        for key in a:
            assert torch.equal(torch.as_tensor(a[key]), torch.as_tensor(b[key])), key
