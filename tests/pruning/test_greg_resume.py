"""GReg resumed from a checkpoint taken in any phase continues bit for bit, into a fresh model."""

from __future__ import annotations

import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from lightning_grda.pruning.greg import GReg
from lightning_grda.pruning.greg_schedule import Phase
from tests.pruning.greg_harness import SMALL, SMALL2, DecayModule, fit, state

# Resumed runs are given only the callbacks under test, not the ModelCheckpoints that wrote the checkpoint.
pytestmark = pytest.mark.filterwarnings("ignore:Be aware that when using `ckpt_path`:UserWarning")


def epoch_checkpoints(dirpath) -> ModelCheckpoint:
    return ModelCheckpoint(
        dirpath=dirpath, filename="e{epoch}", auto_insert_metric_name=False, save_top_k=-1, every_n_epochs=1
    )


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    """Uninterrupted 4-epoch runs of GReg-1 (weight) and GReg-2 (filter), checkpointed at every epoch end."""
    out = {}
    for name, kwargs in (("greg1", SMALL), ("greg2", {**SMALL2, "granularity": "filter", "sparsity": 0.5})):
        root = tmp_path_factory.mktemp(name)
        greg = GReg(**kwargs, print_table=False)
        module, _ = fit(root, [greg, epoch_checkpoints(root / "ckpt")], module=DecayModule())
        out[name] = (root / "ckpt", kwargs, state(module), greg.state_dict())
    return out


@pytest.mark.parametrize(
    ("run", "ckpt", "phase"),
    [
        ("greg1", "e0", Phase.GROW),  # step 8
        ("greg1", "e1", Phase.HOLD),  # step 16
        ("greg1", "e2", Phase.FINE_TUNE),  # step 24
        ("greg2", "e0", Phase.PICK),  # step 8
        ("greg2", "e2", Phase.FINE_TUNE),  # step 24
    ],
)
def test_resume_in_any_phase_continues_bit_for_bit(tmp_path, references, run, ckpt, phase):
    ckpt_dir, kwargs, ref_state, ref_callback = references[run]
    saved = torch.load(ckpt_dir / f"{ckpt}.ckpt", weights_only=False)
    saved_state = next(v for k, v in saved["callbacks"].items() if k.startswith("GReg"))
    assert Phase(saved_state["phase"]) == phase
    greg = GReg(**kwargs, print_table=False)
    module, _ = fit(tmp_path, [greg], module=DecayModule(), ckpt_path=ckpt_dir / f"{ckpt}.ckpt")
    got = state(module)
    assert got.keys() == ref_state.keys()
    for key in ref_state:
        assert torch.equal(got[key], ref_state[key]), key
    callback_state = greg.state_dict()
    assert callback_state.keys() == ref_callback.keys()
    for key, value in ref_callback.items():
        if key == "picked":
            assert value.keys() == callback_state[key].keys()
            assert all(torch.equal(value[k], callback_state[key][k]) for k in value)
        else:
            assert callback_state[key] == value, key
