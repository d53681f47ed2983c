"""Mask structure shared by :class:`~lightning_grda.pruning.greg.GReg` and the magnitude baselines.

Every pruning callback of this pack masks weights with :mod:`torch.nn.utils.prune`, so a pruned layer looks the same
whichever callback pruned it: its parameter ``weight`` becomes ``weight_orig`` (the same ``Parameter`` object, so an
optimizer built before pruning keeps updating it), a buffer ``weight_mask`` (1 = kept, 0 = pruned) is added, and a
forward pre-hook recomputes ``weight = weight_orig * weight_mask`` before each forward.
:func:`make_pruning_permanent` (``torch.nn.utils.prune.remove``) bakes the masks in. Counting what the masks
removed is :mod:`lightning_grda.sparsity`'s (``pruning_report``), choosing the layers :mod:`lightning_grda.layers`'.

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

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn
from torch.nn.utils import prune
from torch.utils.hooks import RemovableHandle

from lightning_grda.layers import LayerSpec, select_layers

__all__ = [
    "MaskKeeper",
    "Target",
    "allow_pruned_state_dicts",
    "apply_mask",
    "is_pruned",
    "make_pruning_permanent",
    "register_structure_hooks",
    "same_parameter_order",
    "trainable",
]


class Target(NamedTuple):
    """One pruned tensor: ``getattr(module, name)``, known to the user as ``key``."""

    key: str
    module: nn.Module
    name: str


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
