"""A training loader whose order is a function of (seed, epoch) and which resumes mid-epoch.

Why hand-written: torch's ``RandomSampler`` draws its order from the global RNG, which a Lightning checkpoint does
not hold, so every batch after a resume differs from the uninterrupted run. torch's ``DistributedSampler`` already
makes the order a function of ``(seed, epoch)`` (``torch.randperm`` seeded with ``seed + epoch``) and shards it over
ranks; :class:`EpochShuffleSampler` is that sampler, usable on one process too, plus a one-shot skip of the samples
already trained on. :class:`ResumableLoader` is a ``DataLoader`` with the ``state_dict`` / ``load_state_dict`` pair
that Lightning's fit loop saves in every checkpoint (``loops.fit_loop.state_dict["combined_loader"]``) and restores
before the resumed epoch's first batch.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from typing_extensions import override

__all__ = ["EpochShuffleSampler", "ResumableLoader"]


class EpochShuffleSampler(DistributedSampler):
    """``DistributedSampler`` whose rank and world size default to one process when no process group is running.

    The order of epoch ``e`` is ``torch.randperm(len(dataset))`` seeded with ``seed + e`` (``shuffle=True``) or
    ``0..n-1``, then rank ``r`` of ``N`` takes every ``N``-th index from ``r``: the same on every rank, in every run,
    and after every resume. Lightning calls :meth:`set_epoch` at each epoch start, and does not replace this sampler
    under DDP (it is a ``DistributedSampler``).

    Args:
        dataset: The map-style dataset to index.
        shuffle: Permute each epoch (``False``: in order).
        seed: Base seed of the permutations; ``None`` takes the ``seed_everything`` seed (``PL_GLOBAL_SEED``, as
            Lightning's own injected ``DistributedSampler`` does), or 0 if none was set.
        drop_last: Drop the tail that does not split evenly over ranks (else pad by repeating indices).
    """

    def __init__(self, dataset: Dataset, shuffle: bool = True, seed: int | None = None, drop_last: bool = False):
        if seed is None:
            seed = int(os.environ.get("PL_GLOBAL_SEED", 0))
        if dist.is_available() and dist.is_initialized():
            replicas, rank = dist.get_world_size(), dist.get_rank()
        else:
            replicas, rank = 1, 0
        super().__init__(dataset, num_replicas=replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=drop_last)
        self._skip = 0
        self._skip_epoch = -1

    def skip_next(self, epoch: int, samples: int) -> None:
        """Leave out the first ``samples`` indices of this rank the next time epoch ``epoch`` is iterated.

        The skip is used once; if the next iteration is of another epoch (the checkpoint was written at the end of
        ``epoch``), it is dropped.
        """
        self._skip, self._skip_epoch = samples, epoch

    @override
    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        skip = self._skip if self._skip_epoch == self.epoch else 0
        self._skip, self._skip_epoch = 0, -1
        return iter(indices[skip:])


class ResumableLoader(DataLoader):
    """``DataLoader`` over an :class:`EpochShuffleSampler` that counts the batches it has yielded this epoch.

    ``state_dict()`` is ``{"epoch", "batches", "batch_size"}``; ``load_state_dict`` makes the next iteration of
    that epoch start after those batches, so a checkpoint written mid-epoch (``every_n_train_steps``) resumes on
    exactly the batches the uninterrupted run would have seen next. The first batch is fetched lazily (on the
    first ``next``), after Lightning's ``set_epoch``.

    Args:
        dataset: The map-style training dataset.
        batch_size: Samples per batch on each rank.
        shuffle: Permute each epoch (seeded by ``seed`` and the epoch).
        seed: Base seed (``None``: the ``seed_everything`` seed); see :class:`EpochShuffleSampler`.
        **kwargs: Other ``DataLoader`` options (``num_workers``, ``pin_memory``, ...); not ``sampler`` or
            ``batch_sampler``.

    Example:
        >>> import torch
        >>> from torch.utils.data import TensorDataset
        >>> loader = ResumableLoader(TensorDataset(torch.arange(6)), batch_size=2, seed=0)
        >>> first = [b[0].tolist() for b in loader]
        >>> loader.load_state_dict({"epoch": 0, "batches": 1, "batch_size": 2})
        >>> [b[0].tolist() for b in loader] == first[1:]
        True
    """

    def __init__(
        self, dataset: Dataset, batch_size: int, shuffle: bool = True, seed: int | None = None, **kwargs: Any
    ) -> None:
        sampler = kwargs.pop("sampler", None)
        if not isinstance(sampler, EpochShuffleSampler):
            sampler = EpochShuffleSampler(dataset, shuffle=shuffle, seed=seed)
        super().__init__(dataset, batch_size=batch_size, sampler=sampler, **kwargs)
        self._batches = 0

    @override
    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        # a generator: the sampler is only iterated on the first ``next``, after Lightning's ``set_epoch``
        self._batches = self._skipped() if self._pending() else 0
        for batch in super().__iter__():
            self._batches += 1
            yield batch

    def _pending(self) -> bool:
        sampler = self.sampler
        return isinstance(sampler, EpochShuffleSampler) and sampler._skip_epoch == sampler.epoch

    def _skipped(self) -> int:
        return self.sampler._skip // self.batch_size  # type: ignore[attr-defined,operator]

    def state_dict(self) -> dict[str, Any]:
        """The epoch, the batches yielded in it so far, and the batch size."""
        return {"epoch": int(self.sampler.epoch), "batches": self._batches, "batch_size": self.batch_size}  # type: ignore[attr-defined]

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Make the next iteration of ``state_dict["epoch"]`` skip the batches already yielded in it.

        Raises:
            ValueError: If the checkpoint was written with another batch size (its batches cannot be skipped).
        """
        saved = state_dict.get("batch_size", self.batch_size)
        if saved != self.batch_size:
            raise ValueError(
                f"Invalid batch_size on resume: {self.batch_size!r}; the checkpoint was written with {saved!r}"
            )
        batches = int(state_dict.get("batches", 0))
        self.sampler.skip_next(int(state_dict.get("epoch", 0)), batches * self.batch_size)  # type: ignore[attr-defined]
        self._batches = batches
