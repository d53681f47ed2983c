"""Per-parameter and global sparsity of a module: :func:`sparsity_report` and its rich table."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

from rich.table import Table
from torch import Tensor, nn

from lightning_grda.sparsity.counts import named_effective_parameters, zero_counts

__all__ = ["SparsityReport", "SparsityRow", "global_sparsity", "parameter_sparsity", "sparsity_report"]


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
