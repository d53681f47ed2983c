"""What the ``lightning-grda`` command says beyond Lightning: the optimizer that runs, what a fit wrote; less noise."""

import logging
import warnings

import pytest
import yaml
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.utilities import rank_zero_info

from lightning_grda._cli_report import hide_version_on_bar, quiet_lightning
from lightning_grda.cli import CONFIG_DIR, main
from tests.helpers import TinyModule, quick_fit_args

QUICK = [
    *quick_fit_args(),
    "--trainer.enable_model_summary=false",
]


def test_a_fit_ends_saying_where_logs_config_and_checkpoints_went(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    main(["fit", *QUICK])
    out = capsys.readouterr().out
    written = out[out.index("Written") :]
    version = tmp_path / "lightning_logs" / "version_0"
    assert "lightning_logs/version_0/config.yaml" in written
    assert "lightning_logs/version_0/checkpoints/last.ckpt" in written
    assert (version / "config.yaml").is_file()
    assert (version / "checkpoints" / "last.ckpt").is_file()  # the default job keeps last.ckpt, to resume from


def test_the_sgd_baseline_says_sgd_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        main(["fit", f"--config={CONFIG_DIR / 'digits_sgd.yaml'}", *QUICK, "--test_after_fit=false"])
    out = " ".join(capsys.readouterr().out.split())
    assert "Optimizer: torch.optim.SGD(lr=0.1), the config's `optimizer`, replaces ImageClassifier's own" in out
    assert not [w for w in caught if "will be overridden" in str(w.message)]


@pytest.mark.parametrize("name", ["digits_sgd", "cifar10_vgg16_sgd", "cifar100_wrn28x10_sgd", "imagenet_resnet50_sgd"])
def test_sgd_configs_read_as_sgd(name):
    config = yaml.safe_load((CONFIG_DIR / f"{name}.yaml").read_text())
    assert config["optimizer"]["class_path"] == "torch.optim.SGD"
    assert config["model"]["init_args"]["c"] == 0.0


def test_every_shipped_config_keeps_last_ckpt():
    for path in CONFIG_DIR.glob("*.yaml"):
        callbacks = yaml.safe_load(path.read_text())["trainer"]["callbacks"]
        checkpoints = [cb for cb in callbacks if cb["class_path"].endswith("ModelCheckpoint")]
        assert checkpoints, path.name
        assert checkpoints[0]["init_args"]["save_last"] is True, path.name


def test_the_lr_drop_moves_from_the_command_line():
    cli = main(["--trainer.callbacks.epoch=5"], run=False)
    from lightning_grda.callbacks import OneTimeLRDrop

    drops = [cb for cb in cli.trainer.callbacks if isinstance(cb, OneTimeLRDrop)]
    assert [d.epoch for d in drops] == [5]


def test_disabling_checkpointing_drops_the_configs_checkpoint_callback():
    cli = main(["--trainer.enable_checkpointing=false"], run=False)
    assert cli.trainer.checkpoint_callbacks == []


def test_lightning_tips_are_silenced(caplog):
    quiet_lightning()
    with caplog.at_level(logging.INFO):
        rank_zero_info("💡 Tip: install something")
        rank_zero_info("a real message")
    assert "Tip" not in caplog.text
    assert "a real message" in caplog.text


def test_the_bar_shows_no_version(tmp_path):
    bar = TQDMProgressBar()
    trainer = Trainer(default_root_dir=tmp_path, logger=CSVLogger(tmp_path), callbacks=[bar], max_epochs=1)
    trainer.strategy.connect(TinyModule())
    assert "v_num" in bar.get_metrics(trainer, trainer.lightning_module)
    hide_version_on_bar(trainer)
    assert "v_num" not in bar.get_metrics(trainer, trainer.lightning_module)


def test_help_describes_the_pack(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert out.startswith("usage: lightning-grda")
    for words in ("gRDA", "digits.yaml", "configs", "fit, validate, test, predict", "--traceback"):
        assert words in out
    assert "Lightning Trainer command line tool" not in out


def test_the_model_summary_counts_flops(tmp_path, monkeypatch):
    from lightning.pytorch.utilities.model_summary import ModelSummary

    monkeypatch.chdir(tmp_path)
    cli = main(["--trainer.logger=false"], run=False)
    assert tuple(cli.model.example_input_array.shape) == (1, 1, 8, 8)  # the digits datamodule's input_shape
    assert ModelSummary(cli.model).total_flops > 0  # the FLOPs column no longer reads 0
