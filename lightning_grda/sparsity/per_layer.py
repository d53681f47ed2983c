"""Per-layer pruning counts: the zero weights and all-zero output channels (filters) of each selected layer.

What the pruning callbacks' tables show (:func:`pruning_report`, :func:`pruning_table`), for any model, pruned by any
method or not at all; the layers are chosen as in :mod:`lightning_grda.layers`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from rich.table import Table
from torch import nn

from lightning_grda.layers import LayerSpec, select_layers
from lightning_grda.sparsity.counts import effective

__all__ = ["PruningRow", "pruning_report", "pruning_table", "report_rows"]


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
