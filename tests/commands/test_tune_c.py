import pytest
import yaml

from lightning_grda.cli import main
from lightning_grda.tune import read_trials


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--tolerance=-1"], "Invalid tolerance: -1.0"),
        (["--max_trials=0"], "Invalid max_trials: 0"),
        (["--mu=0"], "Invalid mu: 0.0"),
        (["--mu=-0.5"], "Invalid mu: -0.5"),
        (["--epochs=0"], "Invalid epochs: 0"),
    ],
)
def test_tune_c_command_refuses_bad_arguments_before_any_trial(args, match, tmp_path):
    with pytest.raises(ValueError, match=match):
        main(["tune-c", *args, f"--output={tmp_path}"])
    assert not (tmp_path / "trials.csv").exists()


def test_tune_c_command_refuses_a_config_without_grda(tmp_path):
    from lightning_grda.cli import CONFIG_DIR

    with pytest.raises(ValueError, match="replaces the model's GRDA"):
        main(["tune-c", f"--config={CONFIG_DIR / 'digits_sgd.yaml'}", f"--output={tmp_path}"])


@pytest.mark.slow  # three real CLI runs (the parse check, SGD, one trial): about 10 s on 2 idle cores
def test_tune_c_real_short_search_on_digits(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["tune-c", "--epochs=1", "--max_trials=1", "--start=0.001", "--tolerance=100", "--output=out"]
    quick = ["--trainer.limit_train_batches=2", "--trainer.limit_val_batches=1", "--trainer.enable_progress_bar=false"]
    assert main([*args, *quick]) == 0
    trials = read_trials(tmp_path / "out" / "trials.csv")
    assert [t.c for t in trials] == pytest.approx([0.0, 1e-3])  # the SGD reference, then the start
    best = yaml.safe_load((tmp_path / "out" / "best.yaml").read_text())
    assert best["model"]["init_args"]["c"] == pytest.approx(1e-3)  # tolerance 100: it passes
    assert best["trainer"]["max_epochs"] == 30  # the config's, not the trials'
    assert (tmp_path / "out" / "c_search.png").exists()
