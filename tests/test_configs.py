"""Every shipped config parses against the CLI and trains for a couple of batches on stand-in data."""

from pathlib import Path

import pytest
import yaml

from lightning_grda.cli import CONFIG_DIR, DEFAULT_CONFIG, main
from lightning_grda.optim.grda import GRDA
from tests.data.test_cifar import make_cifar10, make_cifar100
from tests.data.test_imagenet import make_tree
from tests.helpers import quick_fit_args

CONFIGS = sorted(CONFIG_DIR.glob("*.yaml"))
REPO = Path(__file__).resolve().parents[1]

# Run on this machine: CPU, one process, tiny batches; everything else comes from the config.
SMALL = [
    "--trainer.accelerator=cpu",
    "--trainer.devices=1",
    "--trainer.num_nodes=1",
    "--trainer.strategy=auto",
    "--trainer.sync_batchnorm=false",
    *quick_fit_args(),
    "--trainer.num_sanity_val_steps=0",
    "--data.init_args.batch_size=2",
]


def stand_in_data(name: str, root: Path) -> list[str]:
    """Make data in the config's on-disk format under ``root``; return the overrides that point the config at it."""
    if name.startswith("cifar10_"):
        make_cifar10(root)
    elif name.startswith("cifar100_"):
        make_cifar100(root)
    elif name.startswith("imagenet_"):
        make_tree(root)
        return [
            f"--data.init_args.root={root}",
            "--data.init_args.num_classes=2",
            "--data.init_args.image_size=32",
            "--data.init_args.resize=36",
            "--data.init_args.num_workers=0",
            "--data.init_args.pin_memory=false",
        ]
    else:
        return []
    return [f"--data.init_args.root={root}", "--data.init_args.check_integrity=false", "--data.init_args.num_workers=0"]


def test_the_repository_configs_folder_is_the_packaged_one():
    assert (REPO / "configs").resolve() == CONFIG_DIR.resolve()
    assert DEFAULT_CONFIG.name == "digits.yaml"
    names = {p.name for p in CONFIGS}
    for required in (
        "digits.yaml",
        "digits_sgd.yaml",
        "imagenet_resnet50_grda.yaml",
        "imagenet_resnet50_sgd.yaml",
        "cifar10_vgg16_grda.yaml",
        "cifar10_vgg16_sgd.yaml",
        "cifar100_wrn28x10_grda.yaml",
        "cifar100_wrn28x10_sgd.yaml",
    ):
        assert required in names


@pytest.mark.parametrize("config", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_config_trains_a_couple_of_batches(config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["fit", f"--config={config}", f"--trainer.default_root_dir={tmp_path}", *SMALL]
    if yaml.safe_load(config.read_text()).get("init_from"):  # a trained model (the GReg configs: digits_sgd's)
        args.append("--init_from=null")  # --init_from itself: tests/test_init_weights.py, tests/test_default_job.py
    cli = main([*args, *stand_in_data(config.stem, tmp_path / "data")])
    trainer = cli.trainer
    assert trainer.global_step == 2
    assert "test_acc" in trainer.callback_metrics
    assert 0.0 <= float(trainer.callback_metrics["sparsity"]) <= 1.0
    optimizer = trainer.optimizers[0]
    spec = yaml.safe_load(config.read_text()).get("optimizer")
    if spec is None:  # the model's own GRDA, from its lr/c/mu
        assert isinstance(optimizer, GRDA)
        assert optimizer.defaults["c"] == cli.model.hparams.c > 0
    else:  # LightningCLI's optimizer replaces it: a baseline
        assert type(optimizer).__name__ == spec["class_path"].rsplit(".", 1)[1]
        for key, value in spec["init_args"].items():
            assert optimizer.defaults[key] == value
        if config.stem.endswith("_sgd"):  # the paper's SGD baselines: no momentum, no weight decay
            assert optimizer.defaults["momentum"] == optimizer.defaults["weight_decay"] == 0
