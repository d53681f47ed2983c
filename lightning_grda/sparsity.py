"""Counting exact zeros in parameters: pure functions behind :class:`~lightning_grda.callbacks.SparsityMonitor`.

Sparsity here is the paper's measure (Chao et al., *Directional Pruning of Deep Neural Networks*, NeurIPS 2020,
arXiv 2006.09358): the fraction of **exact** zeros over **all** parameters, biases and normalisation parameters
included. ``-0.0`` is a zero; ``nan`` and tiny values are not.

What is counted, for a module:

* every parameter once, even when it is shared between submodules (``Module.named_parameters`` de-duplicates);
* for a module pruned with :mod:`torch.nn.utils.prune`, the *effective* weight ``weight_orig * weight_mask`` (the
  tensor the next forward uses), reported under the user's name ``weight`` rather than ``weight_orig``; the mask
  buffer itself is not a parameter and is not counted;
* buffers (e.g. BatchNorm running statistics) are not parameters and are not counted.

Per layer, :func:`pruning_report` counts what the pruning callbacks' tables show: the zero weights and the output
channels (filters) that are all zero, in the layers chosen as in :mod:`lightning_grda.layers`.

Counting is batched: one reduction per tensor, the per-tensor counts stacked into one tensor, and a single transfer to
the host (one ``.tolist()``) per report, however many parameters there are.

Sharded parameters (``DTensor``, as FSDP2's ``fully_shard`` and Lightning's ``ModelParallelStrategy`` make them)
are counted exactly: each rank counts its own shards, and the counts are summed over the mesh dimensions that shard
them, with one ``all_reduce`` per mesh and set of sharded dimensions. Sizes and shapes are the full tensor's. This
is a collective: with sharded parameters, every rank of the mesh must make the same call.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from rich.table import Table
from torch import Tensor, nn

from lightning_grda.layers import LayerSpec, select_layers

try:
    from torch.distributed.tensor import DTensor
except ImportError:  # a torch built without distributed support has no sharded tensors to count
    DTensor = None

__all__ = [
    "PruningRow",
    "SparsityReport",
    "SparsityRow",
    "effective",
    "global_sparsity",
    "named_effective_parameters",
    "parameter_sparsity",
    "pruning_report",
    "pruning_table",
    "report_rows",
    "sparsity_report",
    "tensor_sparsity",
    "zero_counts",
]


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


class SparsityRow(NamedTuple):
    """Zeros in one parameter: a row of :class:`SparsityReport`.

    Attributes:
        name: The parameter's name (the effective name for a pruned parameter).
        shape: The parameter's shape.
        numel: The number of elements.
        zeros: The number of exact zeros.
    """

    name: str
    shape: tuple[int, ...]
    numel: int
    zeros: int

    @property
    def nonzeros(self) -> int:
        """The number of elements that are not exact zeros."""
        return self.numel - self.zeros

    @property
    def sparsity(self) -> float:
        """``zeros / numel`` (0.0 for an empty parameter)."""
        return self.zeros / self.numel if self.numel else 0.0


@dataclass(frozen=True)
class SparsityReport:
    """Per-parameter zero counts and exact totals, as made by :func:`sparsity_report`.

    Totals are sums of the integer counts, so :attr:`sparsity` is exactly ``sum(zeros) / sum(numel)``.

    Attributes:
        rows: One :class:`SparsityRow` per parameter, in ``named_parameters`` order.
    """

    rows: tuple[SparsityRow, ...]

    @property
    def numel(self) -> int:
        """The number of parameter elements in all rows."""
        return sum(row.numel for row in self.rows)

    @property
    def zeros(self) -> int:
        """The number of exact zeros in all rows."""
        return sum(row.zeros for row in self.rows)

    @property
    def nonzeros(self) -> int:
        """The number of elements that are not exact zeros, in all rows."""
        return self.numel - self.zeros

    @property
    def sparsity(self) -> float:
        """The global sparsity: all zeros over all elements (0.0 when there are no parameters)."""
        numel = self.numel
        return self.zeros / numel if numel else 0.0

    def as_dict(self) -> dict[str, float]:
        """Each parameter's sparsity by name."""
        return {row.name: row.sparsity for row in self.rows}

    def to_table(self, title: str | None = "Sparsity") -> Table:
        """A :class:`rich.table.Table`: one row per parameter (name, shape, size, nonzeros, sparsity) and the totals.

        Print it with ``rich.console.Console().print(report.to_table())``.
        """
        table = Table(title=title)
        table.add_column("Parameter")
        table.add_column("Shape")
        table.add_column("Size", justify="right")
        table.add_column("Nonzeros", justify="right")
        table.add_column("Sparsity", justify="right")
        for row in self.rows:
            shape = "x".join(map(str, row.shape)) or "scalar"
            table.add_row(row.name, shape, f"{row.numel:,}", f"{row.nonzeros:,}", f"{row.sparsity:.2%}")
        table.add_section()
        table.add_row("Total", "", f"{self.numel:,}", f"{self.nonzeros:,}", f"{self.sparsity:.2%}", style="bold")
        return table


def sparsity_report(module: nn.Module) -> SparsityReport:
    """Count the exact zeros of every (effective) parameter of ``module``, with one host sync in all.

    See :func:`named_effective_parameters` for what is counted (shared parameters once; pruned weights as
    ``weight_orig * weight_mask``).

    Example:
        >>> import torch
        >>> from torch import nn
        >>> layer = nn.Linear(3, 2)
        >>> with torch.no_grad():
        ...     _ = layer.weight[0].zero_()
        ...     _ = layer.bias.fill_(1.0)
        >>> report = sparsity_report(layer)
        >>> for row in report.rows:
        ...     print(row)
        SparsityRow(name='weight', shape=(2, 3), numel=6, zeros=3)
        SparsityRow(name='bias', shape=(2,), numel=2, zeros=0)
        >>> report.zeros, report.numel, report.sparsity
        (3, 8, 0.375)
    """
    named = named_effective_parameters(module)
    counts = zero_counts([t for _, t in named]).tolist()  # the one host sync
    return SparsityReport(
        tuple(
            SparsityRow(name, tuple(t.shape), t.numel(), zeros) for (name, t), zeros in zip(named, counts, strict=True)
        )
    )


def parameter_sparsity(module: nn.Module) -> dict[str, float]:
    """The sparsity of each (effective) parameter of ``module``, by name.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> layer = nn.Linear(2, 2)
        >>> with torch.no_grad():
        ...     _ = layer.weight.copy_(torch.tensor([[0.0, 1.0], [0.0, 0.0]]))
        ...     _ = layer.bias.fill_(1.0)
        >>> parameter_sparsity(layer)
        {'weight': 0.75, 'bias': 0.0}
    """
    return sparsity_report(module).as_dict()


def global_sparsity(parameters: nn.Module | Iterable[Tensor] | Iterable[tuple[str, Tensor]]) -> float:
    """The fraction of exact zeros over all given parameters (the paper's measure; 0.0 if there are none).

    Args:
        parameters: A module (its effective parameters are counted, see :func:`named_effective_parameters`), or
            tensors, or ``(name, tensor)`` pairs such as ``module.named_parameters()``. Tensors are counted as given:
            pass each one once.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> layer = nn.Linear(4, 2)  # 8 weights, 2 biases
        >>> with torch.no_grad():
        ...     _ = layer.weight[0].zero_()
        ...     _ = layer.bias.fill_(1.0)
        >>> global_sparsity(layer)
        0.4
        >>> global_sparsity([layer.weight])
        0.5
    """
    if isinstance(parameters, nn.Module):
        return sparsity_report(parameters).sparsity
    tensors = [p[1] if isinstance(p, tuple) else p for p in parameters]
    numel = sum(t.numel() for t in tensors)
    return sum(zero_counts(tensors).tolist()) / numel if numel else 0.0


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


class PruningRow(NamedTuple):
    """Pruning of one layer's weight: a row of :func:`pruning_report`.

    Attributes:
        layer: the layer's qualified name.
        shape: the weight's shape.
        filters: output channels (rows of a ``Linear`` weight, output channels of a conv).
        filters_removed: output channels whose effective weights are all exactly zero.
        weights: the weight's number of elements.
        zeros: exact zeros in the effective weight.
    """

    layer: str
    shape: tuple[int, ...]
    filters: int
    filters_removed: int
    weights: int
    zeros: int

    @property
    def sparsity(self) -> float:
        """``zeros / weights``."""
        return self.zeros / self.weights if self.weights else 0.0


def pruning_report(module: nn.Module, layers: LayerSpec = None) -> list[PruningRow]:
    """Count, in each selected layer's effective weight, the exact zeros and the output channels that are all zero.

    Counts the weight the forward uses (``weight_orig * weight_mask`` when pruned), so it works for any model, pruned
    by any method or not at all. One host sync in all.

    Args:
        module: the model.
        layers: which layers, as for :func:`select_layers` (default: every ``Conv2d`` and ``Linear``).

    Example:
        >>> from torch.nn.utils import prune
        >>> layer = torch.nn.Linear(3, 4)
        >>> _ = prune.custom_from_mask(layer, "weight", torch.tensor([[1, 1, 1], [0, 0, 0], [1, 0, 1], [0, 0, 0]]))
        >>> pruning_report(torch.nn.Sequential(layer))
        [PruningRow(layer='0', shape=(4, 3), filters=4, filters_removed=2, weights=12, zeros=7)]
    """
    return report_rows(select_layers(module, layers))


def report_rows(layers: Sequence[tuple[str, nn.Module]]) -> list[PruningRow]:
    """The :class:`PruningRow` of each ``(name, module)``, counted as in :func:`pruning_report`."""
    chosen = list(layers)
    weights = [effective(m) for _, m in chosen]
    counts = []
    for w in weights:
        rows = w.reshape(w.shape[0], -1) if w.dim() else w.reshape(1, 1)
        counts.append(torch.stack([(rows == 0).all(dim=1).sum(), (w == 0).sum()]).cpu())
    values = torch.stack(counts).tolist() if counts else []
    return [
        PruningRow(name, tuple(w.shape), w.shape[0] if w.dim() else 1, int(f), w.numel(), int(z))
        for (name, _), w, (f, z) in zip(chosen, weights, values)
    ]


def pruning_table(rows: Sequence[PruningRow], title: str | None = "Pruning") -> Table:
    """A :class:`rich.table.Table` of :func:`pruning_report` rows with totals.

    Print it with ``rich.console.Console().print(pruning_table(rows))``.
    """
    table = Table(title=title)
    for column in ("Layer", "Shape", "Filters removed", "Zero weights", "Sparsity"):
        table.add_column(column, justify="left" if column in ("Layer", "Shape") else "right")
    for row in rows:
        table.add_row(
            row.layer,
            "x".join(map(str, row.shape)),
            f"{row.filters_removed:,} / {row.filters:,}",
            f"{row.zeros:,} / {row.weights:,}",
            f"{row.sparsity:.2%}",
        )
    filters, removed = sum(r.filters for r in rows), sum(r.filters_removed for r in rows)
    weights, zeros = sum(r.weights for r in rows), sum(r.zeros for r in rows)
    table.add_section()
    table.add_row(
        "Total",
        "",
        f"{removed:,} / {filters:,}",
        f"{zeros:,} / {weights:,}",
        f"{zeros / weights if weights else 0.0:.2%}",
        style="bold",
    )
    return table
