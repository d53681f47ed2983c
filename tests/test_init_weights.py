import warnings

import pytest
import torch
from torch import nn

from lightning_grda.cli import main
from lightning_grda.init_weights import load_weights, match_weights
from lightning_grda.optim.grda import GRDA
from tests.helpers import quick_fit_args

QUICK = [
    *quick_fit_args(),
    "--trainer.enable_model_summary=false",
    "--trainer.logger=false",
    "--test_after_fit=false",
]


class Wrapped(nn.Module):
    def __init__(self, out: int = 3) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5), nn.Linear(5, out))


@pytest.fixture(scope="module")
def trained_ckpt(tmp_path_factory):
    """A real fit's checkpoint (2 steps of the default digits job)."""
    root = tmp_path_factory.mktemp("trained")
    cli = main(["fit", *QUICK, f"--trainer.default_root_dir={root}"])
    path = root / "trained.ckpt"
    cli.trainer.save_checkpoint(path)
    return path, {k: v.clone() for k, v in cli.model.state_dict().items()}


def test_fit_init_from_loads_the_weights_only(trained_ckpt, tmp_path):
    path, weights = trained_ckpt
    cli = main(
        ["fit", *QUICK, "--trainer.max_epochs=0", f"--init_from={path}", f"--trainer.default_root_dir={tmp_path}"]
    )
    state = cli.model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in weights.items())
    # not a resume: a fresh optimizer, the epoch count from 0
    cli = main(
        ["fit", *QUICK, "--trainer.max_steps=1", f"--init_from={path}", f"--trainer.default_root_dir={tmp_path}"]
    )
    optimizer = cli.trainer.optimizers[0]
    assert isinstance(optimizer, GRDA)
    assert {float(s["step"]) for s in optimizer.state.values()} == {1.0}
    assert cli.trainer.global_step == 1  # the checkpoint was taken at step 2


def test_validate_init_from_uses_the_loaded_weights(trained_ckpt, tmp_path):
    path, weights = trained_ckpt
    cli = main(["validate", *QUICK[1:-1], f"--init_from={path}", f"--trainer.default_root_dir={tmp_path}"])
    assert torch.equal(cli.model.state_dict()["backbone.features.0.weight"], weights["backbone.features.0.weight"])


def test_mismatched_checkpoint_is_one_clear_error_before_training(tmp_path):
    path = tmp_path / "other.pt"
    state = Wrapped(out=7).state_dict()
    state["backbone.extra"] = torch.zeros(1)
    del state["backbone.0.bias"]
    torch.save(state, path)
    model = Wrapped()
    before = model.backbone[0].weight.clone()
    with pytest.raises(ValueError, match="Invalid init_from") as err:
        load_weights(model, path)
    message = str(err.value)
    assert "1 missing from the file: backbone.0.bias" in message
    assert "1 unexpected (not in the model): backbone.extra" in message
    assert "backbone.2.weight (7, 5) in the file vs (3, 5) in the model" in message
    assert "--init_strict false" in message
    assert torch.equal(model.backbone[0].weight, before)


def test_cli_refuses_a_mismatch_before_any_training(tmp_path):
    path = tmp_path / "other.pt"
    torch.save(Wrapped().state_dict(), path)
    with pytest.raises(ValueError, match="none of its 9 weights match"):
        main(["fit", *QUICK, f"--init_from={path}", f"--trainer.default_root_dir={tmp_path}"])


def test_init_from_and_ckpt_path_together_are_refused(trained_ckpt, tmp_path):
    path, _ = trained_ckpt
    with pytest.raises(ValueError, match="give it or --ckpt_path, not both"):
        main(["fit", *QUICK, f"--init_from={path}", f"--ckpt_path={path}", f"--trainer.default_root_dir={tmp_path}"])


def test_non_strict_loads_what_matches_and_names_what_it_skipped(tmp_path):
    source = Wrapped(out=7)
    path = tmp_path / "head7.pt"
    torch.save(source.state_dict(), path)
    model = Wrapped(out=3)
    with pytest.warns(UserWarning, match=r"skipped 2 with another shape: backbone\.2\.weight .*backbone\.2\.bias"):
        load_weights(model, path, strict=False)
    assert torch.equal(model.backbone[0].weight, source.backbone[0].weight)
    assert not torch.equal(model.backbone[2].bias[:3], source.backbone[2].bias[:3])


@pytest.mark.parametrize("prefix", ["", "model.", "module._orig_mod."])
def test_prefixes_are_matched_only_when_that_makes_keys_match(prefix, tmp_path):
    source = Wrapped()
    path = tmp_path / "w.pt"
    torch.save({prefix + k: v for k, v in source.state_dict().items()}, path)
    model = Wrapped()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_weights(model, path)
    assert torch.equal(model.backbone[2].weight, source.backbone[2].weight)


def test_a_bare_backbone_loads_into_the_module_that_holds_it(tmp_path):
    source = Wrapped().backbone
    path = tmp_path / "bare.pt"
    torch.save(source.state_dict(), path)
    model = Wrapped()
    assert load_weights(model, path).rename == "added 'backbone.'"
    assert torch.equal(model.backbone[0].weight, source[0].weight)


def test_a_pruned_layer_gives_its_masked_weight():
    source = Wrapped()
    state = source.state_dict()
    mask = (torch.arange(20).reshape(5, 4) % 2).float()
    state["backbone.0.weight_orig"] = state.pop("backbone.0.weight")
    state["backbone.0.weight_mask"] = mask
    match = match_weights(Wrapped(), state)
    assert match.exact
    assert torch.equal(match.matched["backbone.0.weight"], source.backbone[0].weight * mask)


def test_a_missing_file_names_it(tmp_path):
    with pytest.raises(ValueError, match=r"Invalid init_from: '.*nope.ckpt'; no such file .*digits_sgd.yaml"):
        load_weights(Wrapped(), tmp_path / "nope.ckpt")
