import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lightning_grda.cli import DEFAULT_CONFIG, main
from lightning_grda.optim.grda import GRDA
from tests.helpers import quick_fit_args

QUICK = [
    *quick_fit_args(),
    "--trainer.logger=false",
    "--trainer.enable_checkpointing=false",
]


def test_fit_defaults_to_digits_and_ends_with_the_test_split(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cli = main(["fit", *QUICK])
    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    assert type(cli.datamodule).__name__ == "DigitsDataModule"
    assert cli.model.hparams.backbone == config["model"]["init_args"]["backbone"]
    assert isinstance(cli.trainer.optimizers[0], GRDA)
    assert cli.trainer.optimizers[0].defaults["c"] == config["model"]["init_args"]["c"]
    metrics = cli.trainer.callback_metrics
    assert {"test_acc", "test_acc_top5", "sparsity"} <= set(metrics)


def test_test_after_fit_can_be_switched_off(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cli = main(["fit", *QUICK, "--test_after_fit=false"])
    assert "test_acc" not in cli.trainer.callback_metrics
    assert cli.trainer.state.finished


def test_datamodule_classes_and_channels_reach_the_model():
    cli = main(["--data=lightning_grda.data.CIFAR100DataModule", "--model.init_args.backbone=resnet20"], run=False)
    assert cli.model.hparams.num_classes == 100
    assert cli.model.hparams.in_channels == 3
    assert cli.model(__import__("torch").zeros(2, 3, 32, 32)).shape == (2, 100)


@pytest.mark.parametrize(
    "model",
    [
        "lightning_grda.models.ImageClassifier",  # the pack's, configuring GRDA itself
        "lightning.pytorch.demos.boring_classes.BoringModel",  # Lightning's, configuring SGD
        "tests.helpers.TinyModule",  # the tests', configuring SGD with momentum
    ],
)
def test_cli_optimizer_replaces_grda_on_any_module(model):
    args = [f"--model={model}", "--optimizer=lightning_grda.GRDA", "--optimizer.c=0.02", "--optimizer.mu=0.51"]
    cli = main(args, run=False)
    assert type(cli.model).__name__ == model.rsplit(".", 1)[1]
    optimizer = cli.model.configure_optimizers()
    optimizer = optimizer[0] if isinstance(optimizer, (list, tuple)) else optimizer
    if isinstance(optimizer, dict):
        optimizer = optimizer["optimizer"]
    assert isinstance(optimizer, GRDA)
    assert (optimizer.defaults["c"], optimizer.defaults["mu"]) == (0.02, 0.51)


def test_unknown_config_key_is_an_error_before_training(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  init_args:\n    not_an_argument: 1\n")
    with pytest.raises(SystemExit):
        main(["fit", f"--config={bad}"])
    assert "not_an_argument" in capsys.readouterr().err


def test_unknown_architecture_is_an_error_that_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"'resnet9000'.*digits_cnn.*resnet50"):
        main(["--model.init_args.backbone=resnet9000"], run=False)


@pytest.mark.parametrize("value", ["0", "-4"])
def test_non_positive_batch_size_is_an_error(value):
    with pytest.raises(ValueError, match=rf"batch_size: {value}"):
        main([f"--data.init_args.batch_size={value}"], run=False)


def test_missing_dataset_says_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["fit", "--data=lightning_grda.data.CIFAR10DataModule", f"--data.init_args.root={tmp_path}", *QUICK]
    with pytest.raises(FileNotFoundError, match=r"cifar-10-batches-py"):
        main([*args, "--model.init_args.backbone=resnet20"])


def test_module_entry_point():
    out = subprocess.run([sys.executable, "-m", "lightning_grda", "--help"], capture_output=True, text=True, check=True)
    assert "fit" in out.stdout
    assert "validate" in out.stdout


@pytest.mark.slow
def test_console_script_runs_the_default_job_and_exits_0(tmp_path):
    script = Path(sys.executable).with_name("lightning-grda")
    assert script.exists(), "the package's console script is not installed next to this Python"
    out = subprocess.run([str(script), "fit", *QUICK], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "test_acc" in out.stdout
    assert "Sparsity at the end of fit" in out.stdout
