"""The ``lightning-grda`` command's errors: one line, naming the option as written, before any work."""

import subprocess
import sys

import pytest

from lightning_grda._cli_errors import one_line
from lightning_grda.cli import run

QUICK = ["--trainer.max_epochs=1", "--trainer.limit_train_batches=1", "--trainer.enable_progress_bar=false"]


def command(args, monkeypatch, capsys):
    """Run the console script in this process; return its exit status and what it printed to stderr."""
    monkeypatch.setattr(sys, "argv", ["lightning-grda", *args])
    with pytest.raises(SystemExit) as exit_info:
        run()
    return exit_info.value.code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--model.init_args.lr=-1"], "Invalid model.init_args.lr: -1.0; expected a finite real number >= 0.0"),
        (["--model.init_args.c=nan"], "Invalid model.init_args.c: 'nan'; expected a finite float"),
        (["--model.init_args.lr", "inf"], "Invalid model.init_args.lr: 'inf'; expected a finite float"),
        (["--model.init_args.mu=0"], "Invalid model.init_args.mu: 0.0; expected a finite real number > 0.0"),
        (["--model.c=nan"], "Invalid model.c: 'nan'"),
        (["--data.init_args.batch_size=0"], "Invalid data.init_args.batch_size: 0; expected an int >= 1"),
        (["--model.init_args.backbone=resnet9000"], "Unknown model.init_args.backbone: 'resnet9000'; expected one of"),
        (["--model.init_args.cc=1"], "Invalid model.init_args.cc: no such option of ImageClassifier; did you mean c?"),
        (
            ["--trainer.callbacks+=lightning_grda.callbacks.SparsityMonitor", "--trainer.callbacks.logging_interval=x"],
            "Invalid trainer.callbacks.logging_interval: 'x'; expected one of ('step', 'epoch')",
        ),
        (["--trainer.callbacks.factor=2"], "Invalid trainer.callbacks.factor: 2"),
        (["--trainer.max_epochz=3"], "Unknown option: --trainer.max_epochz=3 (did you mean --trainer.max_epochs?)"),
    ],
)
def test_bad_input_is_one_line_naming_the_option_before_any_work(args, expected, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    status, err = command(["fit", *args, *QUICK], monkeypatch, capsys)
    assert status == 2
    lines = [line for line in err.splitlines() if line.startswith("lightning-grda: error:")]
    assert len(lines) == 1, err
    assert expected in lines[0]
    assert "Traceback" not in err
    assert "usage:" not in err
    assert "NoneType" not in err
    assert not list(tmp_path.iterdir())  # no logs, no config.yaml: nothing was done


@pytest.mark.parametrize("subcommand", ["test", "validate", "predict"])
def test_evaluating_random_weights_is_refused(subcommand, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    status, err = command([subcommand], monkeypatch, capsys)
    assert status == 2
    assert f"lightning-grda {subcommand} would evaluate the model's random initial weights" in err
    assert "--ckpt_path" in err
    assert not list(tmp_path.iterdir())


def test_missing_cifar_names_the_command_line_flag(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    args = ["fit", "--data=lightning_grda.data.CIFAR10DataModule", f"--data.init_args.root={tmp_path / 'none'}"]
    status, err = command(
        [*args, "--model.init_args.backbone=resnet20", "--trainer.logger=false", *QUICK], monkeypatch, capsys
    )
    assert status == 2
    assert "--data.init_args.download true" in err
    assert "Traceback" not in err


def test_the_traceback_on_request(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LIGHTNING_GRDA_TRACEBACK", raising=False)
    args = ["fit", "--model.init_args.mu=-1"]
    quiet = command(args, monkeypatch, capsys)
    asked = command([*args, "--traceback"], monkeypatch, capsys)
    monkeypatch.setenv("LIGHTNING_GRDA_TRACEBACK", "1")
    by_env = command(args, monkeypatch, capsys)
    assert quiet[0] == asked[0] == by_env[0] == 2
    assert "Traceback" not in quiet[1]
    assert "Invalid model.init_args.mu: -1.0" in quiet[1]
    assert "Traceback" in asked[1]
    assert "Traceback" in by_env[1]


def test_the_console_script_exits_2_with_one_line(tmp_path):
    args = [sys.executable, "-m", "lightning_grda", "fit", "--model.init_args.cc=1"]
    out = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1].startswith("lightning-grda: error: Invalid model.init_args.cc")
    assert "did you mean c?" in out.stderr


def test_one_line_keeps_a_message_it_does_not_know():
    assert one_line("Something\n   odd  happened", []) == "Something odd happened"
