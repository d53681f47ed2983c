"""Which layers of a model a callback acts on: the ``layers`` argument of the pruning callbacks and reports.

A pure-torch helper shared by :mod:`lightning_grda.pruning` (what to prune) and :mod:`lightning_grda.sparsity` (what
to count per layer). It lives at the top of the package, not under ``pruning/``, because ``sparsity`` needs it and
``pruning/`` needs ``sparsity``: one direction of imports, no cycle.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Union

from torch import nn

__all__ = ["DEFAULT_LAYER_TYPES", "LayerSpec", "check_layers", "layer_names", "select_layers"]

#: The layers pruned when no ``layers`` are given.
DEFAULT_LAYER_TYPES: tuple[type[nn.Module], ...] = (nn.Conv2d, nn.Linear)

#: Which layers to prune: ``None`` (every ``Conv2d`` and ``Linear``), a module class, a string, or a sequence of those.
#: A string matches a module whose qualified name contains a match of it as a regular expression (:func:`re.search`)
#: or whose class name equals it (so ``"Conv2d"`` works from a YAML config).
LayerSpec = Union[str, type, Sequence[Union[str, type]], None]  # noqa: UP007 (a runtime alias: jsonargparse reads it)


def check_layers(layers: Any) -> tuple[str | type, ...] | None:
    """Validate a :data:`LayerSpec` and return it as a tuple of entries (``None`` stays ``None``).

    Raises:
        ValueError: if ``layers`` is empty, an entry is neither a string nor an ``nn.Module`` subclass, or a string is
            not a valid regular expression.

    Example:
        >>> check_layers(["fc1", nn.Conv2d])
        ('fc1', <class 'torch.nn.modules.conv.Conv2d'>)
    """
    if layers is None:
        return None
    entries = (layers,) if isinstance(layers, (str, type)) else tuple(layers)
    if not entries:
        raise ValueError(f"Invalid layers: {layers!r}; expected None (every Conv2d and Linear) or at least one entry")
    for entry in entries:
        if isinstance(entry, type) and issubclass(entry, nn.Module):
            continue
        if not isinstance(entry, str):
            raise ValueError(f"Invalid layers entry: {entry!r}; expected a name regex or an nn.Module subclass")
        try:
            re.compile(entry)
        except re.error as err:
            raise ValueError(f"Invalid layers entry: {entry!r}; expected a regular expression ({err})") from None
    return entries


def layer_names(entries: tuple[str | type, ...] | None) -> list[str] | None:
    """The entries of a checked :data:`LayerSpec` as strings (class names for classes), for state keys.

    Example:
        >>> layer_names(("fc1", nn.Conv2d))
        ['fc1', 'Conv2d']
    """
    return None if entries is None else [e if isinstance(e, str) else e.__name__ for e in entries]


def _has_weight(module: nn.Module) -> bool:
    """Whether ``module`` has a ``weight`` parameter, or one masked by :mod:`nn.utils.prune` (``weight_orig``)."""
    return isinstance(getattr(module, "weight", None), nn.Parameter) or isinstance(
        getattr(module, "weight_orig", None), nn.Parameter
    )


def select_layers(module: nn.Module, layers: LayerSpec = None) -> list[tuple[str, nn.Module]]:
    """The submodules of ``module`` whose ``weight`` is to be pruned, as ``(qualified name, module)``.

    Only submodules with a ``weight`` parameter (or a pruned one) are candidates; each is listed once, in
    ``named_modules`` order.

    Args:
        module: the model (e.g. the LightningModule).
        layers: see :data:`LayerSpec`. ``None`` selects every ``Conv2d`` and ``Linear``.

    Raises:
        ValueError: if an entry of ``layers`` matches no candidate (naming the entry), or if ``layers`` is ``None``
            and the model has no ``Conv2d`` or ``Linear``.

    Example:
        >>> net = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4), nn.Linear(4, 2))
        >>> [name for name, _ in select_layers(net)]
        ['0', '2']
        >>> [name for name, _ in select_layers(net, ["^1$", "LayerNorm"])]
        ['1']
        >>> select_layers(net, "fc")
        Traceback (most recent call last):
        ...
        ValueError: Invalid layers entry: 'fc'; it matches no module with a weight in Sequential (candidates: 0, 1, 2)
    """
    candidates = [(name, m) for name, m in module.named_modules() if name and _has_weight(m)]
    entries = check_layers(layers)
    if entries is None:
        chosen = [(name, m) for name, m in candidates if isinstance(m, DEFAULT_LAYER_TYPES)]
        if not chosen:
            raise ValueError(f"Invalid layers: None; {type(module).__name__} has no Conv2d or Linear layer to prune")
        return chosen
    selected: set[str] = set()
    for entry in entries:
        if isinstance(entry, type):
            hits = {name for name, m in candidates if isinstance(m, entry)}
        else:
            hits = {name for name, m in candidates if re.search(entry, name) or type(m).__name__ == entry}
        if not hits:
            names = ", ".join(name for name, _ in candidates[:8]) + (", ..." if len(candidates) > 8 else "")
            raise ValueError(
                f"Invalid layers entry: {entry!r}; it matches no module with a weight in {type(module).__name__} "
                f"(candidates: {names})"
            )
        selected |= hits
    return [(name, m) for name, m in candidates if name in selected]
