"""EpochShuffleSampler / ResumableLoader: order = f(seed, epoch), exact mid-epoch skip, sharding under DDP."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DistributedSampler, TensorDataset

from lightning_grda.data.resumable import EpochShuffleSampler, ResumableLoader
from tests.helpers import join_gloo, spawn_two_ranks


def _order(loader: ResumableLoader) -> list[int]:
    return [i for (batch,) in loader for i in batch.tolist()]


def _data(n: int = 10) -> TensorDataset:
    return TensorDataset(torch.arange(n))


def test_order_is_a_function_of_seed_and_epoch_only() -> None:
    torch.manual_seed(123)
    a = ResumableLoader(_data(), batch_size=3, seed=5)
    torch.manual_seed(456)  # the global RNG plays no part
    b = ResumableLoader(_data(), batch_size=3, seed=5)
    assert _order(a) == _order(b)
    assert sorted(_order(a)) == list(range(10))
    a.sampler.set_epoch(1)
    b.sampler.set_epoch(1)
    assert _order(a) == _order(b) != _order(ResumableLoader(_data(), batch_size=3, seed=5))
    # the same order as torch's DistributedSampler on one replica
    reference = DistributedSampler(_data(), num_replicas=1, rank=0, shuffle=True, seed=5)
    reference.set_epoch(1)
    assert _order(a) == list(reference)


def test_seed_defaults_to_seed_everything(monkeypatch) -> None:
    monkeypatch.setenv("PL_GLOBAL_SEED", "7")
    assert EpochShuffleSampler(_data()).seed == 7
    monkeypatch.delenv("PL_GLOBAL_SEED")
    assert EpochShuffleSampler(_data()).seed == 0


def test_state_dict_resumes_mid_epoch_on_the_remaining_batches() -> None:
    loader = ResumableLoader(_data(), batch_size=3, seed=0)
    loader.sampler.set_epoch(2)
    full = _order(loader)
    it = iter(loader)
    next(it)
    next(it)
    state = loader.state_dict()
    assert state == {"epoch": 2, "batches": 2, "batch_size": 3}

    fresh = ResumableLoader(_data(), batch_size=3, seed=0)
    fresh.load_state_dict(state)
    fresh.sampler.set_epoch(2)  # as Lightning's fit loop does before the first batch
    rest = iter(fresh)
    assert [i for (b,) in [next(rest)] for i in b.tolist()] == full[6:9]
    assert fresh.state_dict()["batches"] == 3  # counts on from the skipped batches
    assert [i for (b,) in rest for i in b.tolist()] == full[9:]
    assert _order(fresh) == full  # the skip is used once


def test_end_of_epoch_state_skips_nothing_in_the_next_epoch() -> None:
    loader = ResumableLoader(_data(), batch_size=3, seed=0)
    loader.sampler.set_epoch(1)
    expected = _order(loader)
    loader.sampler.set_epoch(0)
    _order(loader)
    fresh = ResumableLoader(_data(), batch_size=3, seed=0)
    fresh.load_state_dict(loader.state_dict())  # epoch 0, all 4 batches
    fresh.sampler.set_epoch(1)
    assert _order(fresh) == expected


def test_another_batch_size_is_refused() -> None:
    loader = ResumableLoader(_data(), batch_size=3)
    with pytest.raises(ValueError, match=r"Invalid batch_size on resume: 3; the checkpoint was written with 4"):
        loader.load_state_dict({"epoch": 0, "batches": 1, "batch_size": 4})


def _rank_orders(rank: int, port: int, out) -> None:
    join_gloo(rank, port)
    loader = ResumableLoader(_data(10), batch_size=2, seed=3)
    loader.sampler.set_epoch(1)
    full = _order(loader)
    resumed = ResumableLoader(_data(10), batch_size=2, seed=3)
    resumed.load_state_dict({"epoch": 1, "batches": 1, "batch_size": 2})
    resumed.sampler.set_epoch(1)
    torch.save({"full": full, "rest": _order(resumed)}, f"{out}/{rank}.pt")


@pytest.mark.slow  # two spawned processes: their imports alone take seconds
def test_ddp_ranks_shard_one_permutation_and_resume(tmp_path) -> None:
    spawn_two_ranks(_rank_orders, str(tmp_path))
    ranks = [torch.load(tmp_path / f"{r}.pt") for r in range(2)]
    reference = DistributedSampler(_data(10), num_replicas=1, rank=0, shuffle=True, seed=3)
    reference.set_epoch(1)
    permutation = list(reference)
    assert ranks[0]["full"] == permutation[0::2]
    assert ranks[1]["full"] == permutation[1::2]
    for r in ranks:
        assert r["rest"] == r["full"][2:]
