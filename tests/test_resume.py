"""Resume of a shipped job after a real crash (SIGKILL) is bit for bit, with the training shuffle on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lightning_grda._resume import check_resume, explicit_model_options, read_checkpoint
from lightning_grda.cli import CONFIG_DIR, main

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


REPO = Path(__file__).resolve().parents[1]


def _fit(tmp_path, name: str, *extra: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "lightning_grda", "fit", f"--config={_config(tmp_path, name)}", *extra]
    # the killing callback lives in tests.helpers: the repository root must be importable in the child, whatever
    # the working directory (a clean checkout has no PYTHONPATH)
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    return subprocess.run(command, cwd=tmp_path / name, capture_output=True, text=True, timeout=300, env=env)


def _state(path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


@pytest.mark.slow  # two CLI processes and one in-process run of 20 steps each
def test_resume_after_sigkill_mid_epoch_is_bit_for_bit(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    main(["fit", f"--config={_config(tmp_path, 'whole')}"])  # uninterrupted, in this process (no import cost)

    # step 17 is batch 6 of epoch 1; the last checkpoint before it is step 15 (batch 4 of epoch 1: mid-epoch)
    # started for 30 steps, resumed for 20: a trainer option given on resume is honoured
    kill = ["--trainer.callbacks+=tests.helpers.KillAtStep", "--trainer.callbacks.step=17", "--trainer.max_steps=30"]
    killed = _fit(tmp_path, "killed", *kill)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    last = tmp_path / "killed" / "ckpt" / "last.ckpt"
    assert _state(last)["global_step"] == 15
    assert _state(last)["loops"]["fit_loop"]["state_dict"]["combined_loader"] == [
        {"epoch": 1, "batches": 4, "batch_size": 129}
    ]
    # an explicit model option that agrees with the checkpoint is accepted
    resumed = _fit(tmp_path, "killed", f"--ckpt_path={last}", "--trainer.max_steps=20", "--model.init_args.c=0.06")
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


# --ckpt_path checks (lightning_grda/_resume.py): run before anything is built, so fabricated checkpoints suffice

DIGITS = {"class_path": "lightning_grda.models.ImageClassifier", "init_args": {"backbone": "digits_cnn", "c": 0.06}}
SAVED = {"_class_path": "lightning_grda.models.ImageClassifier", "backbone": "resnet20", "c": 0.5}


def test_options_nobody_gave_take_the_checkpoint_values():
    check_resume({"hyper_parameters": SAVED}, "x.ckpt", model=DIGITS, defaults=DIGITS, named=set())


def test_an_explicit_option_that_contradicts_the_checkpoint_is_refused():
    message = r"Invalid model.init_args.backbone: 'digits_cnn' contradicts the checkpoint 'x.ckpt', .* 'resnet20'"
    with pytest.raises(ValueError, match=message):
        check_resume({"hyper_parameters": SAVED}, "x.ckpt", model=DIGITS, defaults=DIGITS, named={"backbone"})
    # set by a --config file: differs from the default config
    asked = {"class_path": DIGITS["class_path"], "init_args": {"backbone": "resnet20", "c": 0.2}}
    with pytest.raises(ValueError, match=r"Invalid model.init_args.c: 0.2 contradicts .* 0.5"):
        check_resume({"hyper_parameters": SAVED}, "x.ckpt", model=asked, defaults=DIGITS, named=set())
    other = {"class_path": "my.Model", "init_args": {}}
    with pytest.raises(ValueError, match=r"Invalid model.class_path: 'my.Model' contradicts"):
        check_resume({"hyper_parameters": SAVED}, "x.ckpt", model=other, defaults=DIGITS, named={"class_path"})


def test_explicit_model_options():
    assert explicit_model_options(["fit", "--model.init_args.c", "1", "--model.backbone=x", "--data.seed=1"]) == {
        "c",
        "backbone",
    }


def test_empty_or_garbage_checkpoint_is_named(tmp_path):
    empty = tmp_path / "empty.ckpt"
    empty.touch()
    with pytest.raises(ValueError, match=r"Invalid ckpt_path: '.*empty.ckpt' is empty \(0 bytes\)"):
        read_checkpoint(empty)
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"Invalid ckpt_path: '.*garbage.ckpt' could not be read as a checkpoint"):
        read_checkpoint(garbage)


def test_cli_refuses_an_empty_checkpoint_and_a_grda_state_under_sgd(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["lightning-grda"])
    empty = tmp_path / "empty.ckpt"
    empty.touch()
    with pytest.raises(SystemExit) as exit_:
        main(["fit", f"--ckpt_path={empty}"])
    assert exit_.value.code == 2
    assert "empty.ckpt' is empty (0 bytes)" in capsys.readouterr().err

    grda = tmp_path / "grda.ckpt"
    hparams = {**SAVED, "backbone": "digits_cnn", "c": 0.06}
    torch.save({"hyper_parameters": hparams, "optimizer_states": [{"param_groups": [{"c": 0.06, "mu": 0.6}]}]}, grda)
    with pytest.raises(SystemExit):
        main(["fit", f"--config={CONFIG_DIR / 'digits_sgd.yaml'}", f"--ckpt_path={grda}"])
    err = capsys.readouterr().err
    assert "grda.ckpt' holds a GRDA optimizer state" in err
    assert "this run's optimizer is torch.optim.SGD, which cannot continue it" in err


def test_cli_refuses_a_contradicting_backbone(tmp_path, capsys, monkeypatch):
    # in process (a subprocess costs seconds of imports): main() parses these args as the console script does
    monkeypatch.setattr(sys, "argv", ["lightning-grda"])
    checkpoint = tmp_path / "resnet20.ckpt"
    torch.save({"hyper_parameters": SAVED}, checkpoint)
    with pytest.raises(SystemExit) as exit_:
        main(["fit", "--model.init_args.backbone=digits_cnn", f"--ckpt_path={checkpoint}"])
    assert exit_.value.code == 2
    assert "Invalid model.init_args.backbone: 'digits_cnn' contradicts the checkpoint" in capsys.readouterr().err
