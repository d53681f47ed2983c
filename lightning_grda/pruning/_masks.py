"""Mask plumbing shared by :class:`~lightning_grda.pruning.greg.GReg` and the magnitude baselines.

Every pruning callback of this pack masks weights with :mod:`torch.nn.utils.prune`, so a pruned layer looks the same
whichever callback pruned it: its parameter ``weight`` becomes ``weight_orig`` (the same ``Parameter`` object, so an
optimizer built before pruning keeps updating it), a buffer ``weight_mask`` (1 = kept, 0 = pruned) is added, and a
forward pre-hook recomputes ``weight = weight_orig * weight_mask`` before each forward.
:func:`make_pruning_permanent` (``torch.nn.utils.prune.remove``) bakes the masks in.

On top of torch's pruning this module adds what training with masks needs:

* **Parameter order is kept.** torch re-registers ``weight_orig`` after the module's other parameters, so
  ``module.parameters()`` of a pruned model lists them in another order than the unpruned model did. An optimizer
  built after a resume from a pruned checkpoint would then pair the checkpoint's optimizer state (stored by
  position) with the wrong parameters. :func:`apply_mask` and :func:`make_pruning_permanent` restore the order.
* **Resume into a fresh model.** A checkpoint of a pruned model has ``weight_orig``/``weight_mask`` keys, which an
  unpruned module refuses to load. :func:`register_structure_hooks` adds ``load_state_dict`` pre-hooks that give
  each layer the structure its incoming state dict has (pruned or not) just before it loads.
* **Masked weights stay zero underneath.** The effective weight ``weight_orig * weight_mask`` is exactly zero at
  masked entries whatever the optimizer does, but momentum and weight decay keep moving ``weight_orig`` there.
  :class:`MaskKeeper` zeroes those entries of ``weight_orig`` after every optimizer step, so reading
  ``weight_orig`` or baking the masks never shows a leak.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple, Union

import torch
from rich.table import Table
from torch import Tensor, nn
from torch.nn.utils import prune
from torch.utils.hooks import RemovableHandle

__all__ = [
    "DEFAULT_LAYER_TYPES",
    "allow_pruned_state_dicts",
    "LayerSpec",
    "MaskKeeper",
    "PruningRow",
    "Target",
    "apply_mask",
    "check_layers",
    "effective",
    "is_pruned",
    "layer_names",
    "make_pruning_permanent",
    "pruning_report",
    "pruning_table",
    "register_structure_hooks",
    "report_rows",
    "same_parameter_order",
    "select_layers",
    "trainable",
]

#: The layers pruned when no ``layers`` are given.
DEFAULT_LAYER_TYPES: tuple[type[nn.Module], ...] = (nn.Conv2d, nn.Linear)

#: Which layers to prune: ``None`` (every ``Conv2d`` and ``Linear``), a module class, a string, or a sequence of those.
#: A string matches a module whose qualified name contains a match of it as a regular expression (:func:`re.search`)
#: or whose class name equals it (so ``"Conv2d"`` works from a YAML config).
LayerSpec = Union[str, type, Sequence[Union[str, type]], None]  # noqa: UP007 (a runtime alias: jsonargparse reads it)


class Target(NamedTuple):
    """One pruned tensor: ``getattr(module, name)``, known to the user as ``key``."""

    key: str
    module: nn.Module
    name: str


def check_number(name: str, value: Any, low: float, high: float = math.inf, low_open: bool = True) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``low < value < high`` (``<=`` at ``low`` if not ``low_open``)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (value > low if low_open else value >= low) and value < high
    if not ok:
        bound = f"{low:g} {'<' if low_open else '<='} {name}" + (f" < {high:g}" if high != math.inf else "")
        raise ValueError(f"Invalid {name}: {value!r}; expected {bound}")


def check_int(name: str, value: Any, low: int) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is an ``int`` (not a ``bool``) ``>= low``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"Invalid {name}: {value!r}; expected an integer >= {low}")


def check_layers(layers: Any) -> tuple[str | type, ...] | None:
    """Validate a :data:`LayerSpec` and return it as a tuple of entries (``None`` stays ``None``).

    Raises:
        ValueError: if ``layers`` is empty, an entry is neither a string nor an ``nn.Module`` subclass, or a string is
            not a valid regular expression.

    Example:
        >>> check_layers(["fc1", torch.nn.Conv2d])
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
            raise ValueError(f"Invalid layers entry: {entry!r}; not a regular expression ({err})") from None
    return entries


def layer_names(entries: tuple[str | type, ...] | None) -> list[str] | None:
    """The entries of a checked :data:`LayerSpec` as strings (class names for classes), for state keys.

    Example:
        >>> layer_names(("fc1", torch.nn.Conv2d))
        ['fc1', 'Conv2d']
    """
    return None if entries is None else [e if isinstance(e, str) else e.__name__ for e in entries]


def is_pruned(module: nn.Module, name: str = "weight") -> bool:
    """Whether ``module.<name>`` is masked by :mod:`torch.nn.utils.prune` (has ``<name>_orig`` and ``<name>_mask``).

    Example:
        >>> layer = torch.nn.Linear(2, 2)
        >>> is_pruned(layer), is_pruned(prune.identity(layer, "weight"))
        (False, True)
    """
    return isinstance(getattr(module, f"{name}_orig", None), nn.Parameter) and isinstance(
        getattr(module, f"{name}_mask", None), Tensor
    )


def trainable(module: nn.Module, name: str = "weight") -> nn.Parameter:
    """The parameter the optimizer updates for ``module.<name>``: ``<name>_orig`` if pruned, else ``<name>``."""
    return getattr(module, f"{name}_orig") if is_pruned(module, name) else getattr(module, name)


def effective(module: nn.Module, name: str = "weight") -> Tensor:
    """The tensor the next forward uses (``<name>_orig * <name>_mask`` if pruned), detached.

    The attribute ``<name>`` of a pruned module is only refreshed by a forward, so it lags behind optimizer steps;
    this computes it afresh.
    """
    with torch.no_grad():
        if is_pruned(module, name):
            return getattr(module, f"{name}_orig") * getattr(module, f"{name}_mask")
        return getattr(module, name).detach()


def _has_weight(module: nn.Module) -> bool:
    return isinstance(getattr(module, "weight", None), nn.Parameter) or is_pruned(module, "weight")


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
        >>> net = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4), torch.nn.Linear(4, 2))
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


@contextmanager
def same_parameter_order(module: nn.Module) -> Iterator[None]:
    """Restore the order of ``module``'s own parameters (by identity) after the body re-registers some of them.

    ``torch.nn.utils.prune`` deletes ``<name>`` and registers the same ``Parameter`` as ``<name>_orig`` at the end
    (and ``prune.remove`` does the reverse); this puts it back at its old place, with public ``Module`` methods only.
    """
    before = {id(p): i for i, (_, p) in enumerate(module.named_parameters(recurse=False))}
    yield
    now = list(module.named_parameters(recurse=False))
    wanted = sorted(now, key=lambda item: before.get(id(item[1]), len(before)))
    if [n for n, _ in now] == [n for n, _ in wanted]:
        return
    for name, param in wanted:  # re-register all in the wanted order: the dict keeps insertion order
        delattr(module, name)
        module.register_parameter(name, param)


def apply_mask(module: nn.Module, name: str, keep: Tensor) -> None:
    """Mask ``module.<name>`` with ``keep`` (nonzero = kept) through :mod:`torch.nn.utils.prune`.

    An unpruned tensor gets torch's structure (``prune.custom_from_mask``) with its parameter kept at its place in
    the module's parameter order; an already pruned one gets its ``<name>_mask`` buffer overwritten in place, so the
    existing hook, whatever pruning method made it, applies the new mask. The masked entries of ``<name>_orig`` are
    zeroed and the attribute ``<name>`` refreshed at once.

    Example:
        >>> layer = torch.nn.Linear(2, 2, bias=False)
        >>> apply_mask(layer, "weight", torch.tensor([[1, 0], [0, 1]]))
        >>> [n for n, _ in layer.named_parameters()], layer.weight_mask.tolist()
        (['weight_orig'], [[1.0, 0.0], [0.0, 1.0]])
        >>> bool((layer.weight_orig[0, 1] == 0) & (layer.weight[0, 1] == 0))
        True
    """
    if is_pruned(module, name):
        mask = getattr(module, f"{name}_mask")
        mask.copy_(keep.to(device=mask.device, dtype=mask.dtype))
    else:
        param = getattr(module, name)
        with same_parameter_order(module):
            prune.custom_from_mask(module, name, keep.to(device=param.device, dtype=param.dtype))
        mask = getattr(module, f"{name}_mask")
    orig = getattr(module, f"{name}_orig")
    with torch.no_grad():
        orig.mul_(mask)
        setattr(module, name, orig * mask)


def make_pruning_permanent(module: nn.Module) -> list[str]:
    """Bake every :mod:`torch.nn.utils.prune` mask in ``module`` into its weights (``prune.remove``).

    Afterwards each pruned tensor is a plain parameter again, holding the masked values (zeros where pruned), at its
    old place in the parameter order; the masks and hooks are gone.

    Returns:
        The qualified names of the tensors that were made permanent.

    Example:
        >>> net = torch.nn.Sequential(torch.nn.Linear(2, 2))
        >>> apply_mask(net[0], "weight", torch.tensor([[1, 0], [0, 1]]))
        >>> make_pruning_permanent(net)
        ['0.weight']
        >>> [n for n, _ in net.named_parameters()], int((net[0].weight == 0).sum())
        (['0.weight', '0.bias'], 2)
    """
    done = []
    for prefix, sub in module.named_modules():
        names = [n[: -len("_orig")] for n, _ in sub.named_parameters(recurse=False) if n.endswith("_orig")]
        for name in names:
            if is_pruned(sub, name):
                with same_parameter_order(sub):
                    prune.remove(sub, name)
                done.append(f"{prefix}.{name}" if prefix else name)
    return done


class _SyncStructure:
    """A ``load_state_dict`` pre-hook: give ``module.<names>`` the pruning structure the incoming state dict has."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = tuple(names)

    def __call__(self, module: nn.Module, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        for name in self.names:
            stored_pruned = f"{prefix}{name}_orig" in state_dict and f"{prefix}{name}_mask" in state_dict
            if stored_pruned and not is_pruned(module, name) and isinstance(getattr(module, name, None), Tensor):
                apply_mask(module, name, torch.ones_like(getattr(module, name)))  # the load fills in the real mask
            elif not stored_pruned and f"{prefix}{name}" in state_dict and is_pruned(module, name):
                with same_parameter_order(module):
                    prune.remove(module, name)


def register_structure_hooks(targets: Sequence[Target]) -> list[RemovableHandle]:
    """Let the targets' modules load state dicts of pruned and unpruned models alike (see the module docstring).

    Returns:
        The hook handles; ``handle.remove()`` each to undo.
    """
    names: dict[nn.Module, list[str]] = {}
    for target in targets:
        names.setdefault(target.module, []).append(target.name)
    return [module.register_load_state_dict_pre_hook(_SyncStructure(ns)) for module, ns in names.items()]


def allow_pruned_state_dicts(module: nn.Module, layers: LayerSpec = None) -> list[RemovableHandle]:
    """Let ``module`` load state dicts of a pruned model (``weight_orig``/``weight_mask`` keys) and of an unpruned one.

    For loading a checkpoint written during GReg or one-shot pruning outside a Trainer that has the callback (the
    callbacks do this themselves at ``setup``). Covers the ``weight`` and ``bias`` of the selected layers.

    Args:
        module: the model to load into.
        layers: which layers, as for :func:`select_layers` (default: every ``Conv2d`` and ``Linear``).

    Returns:
        The hook handles; ``handle.remove()`` each to undo.

    Example:
        >>> pruned, fresh = torch.nn.Sequential(torch.nn.Linear(2, 2)), torch.nn.Sequential(torch.nn.Linear(2, 2))
        >>> apply_mask(pruned[0], "weight", torch.tensor([[1, 0], [0, 1]]))
        >>> handles = allow_pruned_state_dicts(fresh)
        >>> fresh.load_state_dict(pruned.state_dict())
        <All keys matched successfully>
        >>> fresh[0].weight_mask.tolist()
        [[1.0, 0.0], [0.0, 1.0]]
    """
    targets = [Target(f"{name}.{p}", m, p) for name, m in select_layers(module, layers) for p in ("weight", "bias")]
    return register_structure_hooks(targets)


class MaskKeeper:
    """Zero the masked entries of each target's ``<name>_orig`` after every step of the attached optimizers.

    Uses :meth:`torch.optim.Optimizer.register_step_post_hook`, so it runs after every real step whatever calls it
    (automatic or manual optimization, gradient accumulation; a step skipped by the AMP grad scaler is not a step).
    Targets that are not pruned are skipped.

    Args:
        targets: the pruned (or to-be-pruned) tensors.
    """

    def __init__(self, targets: Sequence[Target]) -> None:
        self.targets = list(targets)
        self._handles: list[RemovableHandle] = []

    def attach(self, optimizers: Sequence[torch.optim.Optimizer]) -> None:
        """Register the post-step hook on each optimizer (detaching any previous registration)."""
        self.detach()
        self._handles = [opt.register_step_post_hook(self._after_step) for opt in optimizers]

    def detach(self) -> None:
        """Remove the hooks."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    @torch.no_grad()
    def zero(self) -> None:
        """Zero the masked entries of every pruned target's ``<name>_orig`` now."""
        for target in self.targets:
            if is_pruned(target.module, target.name):
                getattr(target.module, f"{target.name}_orig").mul_(getattr(target.module, f"{target.name}_mask"))

    def _after_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        self.zero()

    def __getstate__(self) -> dict[str, Any]:  # hook handles belong to this process's optimizers
        return {**self.__dict__, "_handles": []}


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
        >>> layer = torch.nn.Linear(3, 4)
        >>> apply_mask(layer, "weight", torch.tensor([[1, 1, 1], [0, 0, 0], [1, 0, 1], [0, 0, 0]]))
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
