"""Exact zeros per tensor, one host sync for many, sharded tensors (``DTensor``) included; the effective parameters.

What is counted and how sharded tensors are summed across ranks: see :mod:`lightning_grda.sparsity`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

try:
    from torch.distributed.tensor import DTensor
except ImportError:  # a torch built without distributed support has no sharded tensors to count
    DTensor = None

__all__ = ["effective", "named_effective_parameters", "tensor_sparsity", "zero_counts"]


def zero_counts(tensors: Sequence[Tensor], device: torch.device | str | None = None) -> Tensor:
    """The number of exact zeros in each tensor, as one int64 tensor, without a host sync per tensor.

    Each count is computed on its tensor's device; the counts are gathered on ``device`` (default: the first tensor's
    device), so the caller can read them all with a single ``.tolist()``. A sharded ``DTensor`` is counted over all
    its shards, with a collective across the ranks that hold them (see the module docstring).

    Args:
        tensors: The tensors to count, on any devices.
        device: Where the returned counts live. ``None`` takes the first tensor's device (the CPU if there is none).

    Returns:
        A 1-D int64 tensor with ``len(tensors)`` counts.

    Example:
        >>> import torch
        >>> zero_counts([torch.tensor([0.0, 1.0, -0.0]), torch.zeros(2, 2), torch.tensor([float("nan")])])
        tensor([2, 4, 0])
    """
    if device is None:
        device = tensors[0].device if len(tensors) else torch.device("cpu")
    if not len(tensors):
        return torch.zeros(0, dtype=torch.int64, device=device)
    # torch.count_nonzero is one kernel and allocates no boolean mask; zeros = numel - nonzeros for all at once.
    # A DTensor's numel is the full tensor's; its local shard is counted, then summed across the shards.
    nonzeros = torch.stack([torch.count_nonzero(_local(t)).to(device) for t in tensors])
    nonzeros = _sum_over_shards(tensors, nonzeros)
    return torch.tensor([t.numel() for t in tensors], dtype=torch.int64, device=device) - nonzeros


def _local(t: Tensor) -> Tensor:
    """The part of ``t`` this rank holds: a DTensor's local shard, or ``t`` itself."""
    return t.to_local() if DTensor is not None and isinstance(t, DTensor) else t


def _sum_over_shards(tensors: Sequence[Tensor], nonzeros: Tensor) -> Tensor:
    """Sum each sharded DTensor's local count over the mesh dimensions that shard it (replicas are not summed).

    One ``all_reduce`` per (mesh, sharded dimension): tensors sharded alike share it. Every rank iterates the
    tensors in the same order, so the collectives match across ranks.
    """
    if DTensor is None:
        return nonzeros
    groups: dict[tuple[Any, tuple[int, ...]], list[int]] = {}
    for i, t in enumerate(tensors):
        if isinstance(t, DTensor):
            dims = tuple(d for d, placement in enumerate(t.placements) if placement.is_shard())
            if dims:
                groups.setdefault((t.device_mesh, dims), []).append(i)
    for (mesh, dims), indices in groups.items():
        index = torch.tensor(indices, device=nonzeros.device)
        part = nonzeros[index].to(mesh.device_type)  # the collective runs on the mesh's device (gloo: CPU)
        for d in dims:
            torch.distributed.all_reduce(part, group=mesh.get_group(d))
        nonzeros = nonzeros.index_copy(0, index, part.to(nonzeros.device))
    return nonzeros


def tensor_sparsity(tensor: Tensor) -> float:
    """The fraction of exact zeros in one tensor (0.0 for an empty tensor).

    Example:
        >>> import torch
        >>> tensor_sparsity(torch.tensor([0.0, -0.0, 1.0, float("nan")]))
        0.5
    """
    numel = tensor.numel()
    return zero_counts([tensor]).item() / numel if numel else 0.0


def named_effective_parameters(module: nn.Module) -> list[tuple[str, Tensor]]:
    """The parameters of ``module`` as the forward pass sees them, each once, by the names a user knows.

    A parameter shared between submodules appears once. For a module pruned with :mod:`torch.nn.utils.prune`, the
    parameter ``<name>_orig`` is replaced by ``<name>_orig * <name>_mask`` named ``<name>``: the weight the next
    forward uses, computed afresh (the attribute ``<name>`` that pruning keeps is only refreshed by a forward, so it
    lags behind optimizer steps).

    Example:
        >>> from torch import nn
        >>> from torch.nn.utils import prune
        >>> net = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
        >>> _ = prune.l1_unstructured(net[0], "weight", amount=2)
        >>> [name for name, _ in named_effective_parameters(net)]
        ['0.bias', '0.weight', '1.weight', '1.bias']
        >>> int((named_effective_parameters(net)[1][1] == 0).sum())
        2
    """
    out = []
    for name, param in module.named_parameters():
        prefix, _, leaf = name.rpartition(".")
        if leaf.endswith("_orig"):
            base = leaf[: -len("_orig")]
            owner = module.get_submodule(prefix)
            mask = dict(owner.named_buffers(recurse=False)).get(f"{base}_mask")
            if mask is not None:
                with torch.no_grad():
                    out.append((f"{prefix}.{base}" if prefix else base, param.detach() * mask))
                continue
        out.append((name, param.detach()))
    return out


def effective(module: nn.Module, name: str = "weight") -> Tensor:
    """The tensor the next forward uses (``<name>_orig * <name>_mask`` if pruned), detached.

    The attribute ``<name>`` of a pruned module is only refreshed by a forward, so it lags behind optimizer steps;
    this computes it afresh.
    """
    orig, mask = getattr(module, f"{name}_orig", None), getattr(module, f"{name}_mask", None)
    with torch.no_grad():
        if isinstance(orig, nn.Parameter) and isinstance(mask, Tensor):
            return orig * mask
        return getattr(module, name).detach()
