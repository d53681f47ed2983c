"""Remove the channels that pruning killed: a smaller dense network with the same outputs.

Unstructured zeros shrink a file, not dense compute. Whole dead channels do: removing them (and the matching input
channels of their consumers) gives a thinner network that runs faster anywhere. Torch-Pruning
(https://github.com/VainF/Torch-Pruning) traces the network into a dependency graph, groups the channels that must go
together (a residual addition couples the channels of both branches) and removes them physically; this module only
decides *which* channels are dead, from the weights, so that removing them changes no output:

* every producer of the channel (a conv/linear output channel in the group) has all-zero weights and a zero (or no)
  bias, and every BatchNorm in the group maps that zero to zero: its eval-mode constant
  ``bias - running_mean * weight / sqrt(running_var + eps)`` is exactly zero, or is negative and every use of the BN's
  output is a ReLU; or
* every consumer of the channel (a conv/linear input channel in the group) has all-zero weights for it.

A channel whose output is a nonzero constant (dead weights but a nonzero bias or BN shift surviving a ReLU) is
**kept**. Folding that constant into the consumers' biases is exact only where no zero padding, pooling window or
other position-dependent op lies in between (a 3x3 conv with ``padding=1`` sees the constant at inner positions and
zeros at the border), which this module does not verify; keeping is always exact. At least one channel of every group
is kept, so no layer becomes empty. The layer that produces the network's output keeps its outputs.

:func:`thin` checks the result: the thinned network's outputs on the example input must match the original's.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["ThinReport", "dead_channels", "thin"]

_PRODUCERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


@dataclass
class ThinReport:
    """What :func:`thin` removed: ``(layer, channels before, channels removed)`` per group, parameters and MACs."""

    layers: list[tuple[str, int, int]] = field(default_factory=list)
    params_before: int = 0
    params_after: int = 0
    macs_before: int = 0
    macs_after: int = 0
    max_abs_diff: float = 0.0

    def summary(self) -> str:
        """One line: parameters and MACs before and after."""
        return (
            f"thinned: parameters {self.params_before:,} -> {self.params_after:,} "
            f"({self.params_after / max(self.params_before, 1):.3f}x), MACs {self.macs_before:,} -> "
            f"{self.macs_after:,} ({self.macs_after / max(self.macs_before, 1):.3f}x); "
            f"max |output difference| {self.max_abs_diff:.2e}"
        )

    def table(self) -> Any:
        """The per-layer :class:`rich.table.Table`."""
        from rich.table import Table

        table = Table(title="Dead channels removed")
        for col in ("layer (group root)", "channels", "removed", "kept"):
            table.add_column(col, justify="left" if col.startswith("layer") else "right")
        for name, before, removed in self.layers:
            table.add_row(name, str(before), str(removed), str(before - removed))
        return table


def _all_zero(t: Tensor) -> bool:
    return not bool(t.any())


def _relu_only(dg: Any, module: nn.Module) -> bool:
    node = dg.module2node.get(module)
    if node is None or not node.outputs:
        return False
    return all(
        isinstance(o.module, nn.ReLU) or "relu" in type(getattr(o, "grad_fn", None)).__name__.lower()
        for o in node.outputs
    )


def _is_dead(dg: Any, group: Any) -> bool:
    """Whether the single channel that ``group`` removes is dead (see the module docstring)."""
    producers_zero = consumers_zero = True
    n_producers = n_consumers = 0
    for dep, idxs in group.items:
        module, handler = dep.target.module, getattr(dep.handler, "__name__", "")
        if "pad" in type(getattr(dep.target, "grad_fn", None)).__name__.lower():
            return False  # channels padded in (a ResNet's option-A shortcut): Torch-Pruning cannot remap them
        idx = torch.as_tensor(list(idxs), dtype=torch.long)
        if isinstance(module, _PRODUCERS) and handler == "prune_out_channels":
            n_producers += 1
            w = module.weight.detach().index_select(0, idx)
            b = None if module.bias is None else module.bias.detach()[idx]
            producers_zero &= _all_zero(w) and (b is None or _all_zero(b))
        elif isinstance(module, _PRODUCERS) and handler == "prune_in_channels":
            n_consumers += 1
            dim = 0 if isinstance(module, nn.Conv2d | nn.Conv1d | nn.Conv3d) and module.transposed else 1
            w = module.weight.detach()
            if isinstance(module, nn.Conv1d | nn.Conv2d | nn.Conv3d) and module.groups > 1:
                consumers_zero = False  # a grouped conv's input slices are not plain columns
                continue
            consumers_zero &= _all_zero(w.index_select(dim, idx))
        elif isinstance(module, _NORMS) and handler == "prune_out_channels":
            if module.training or not module.track_running_stats or module.running_mean is None:
                producers_zero = False
                continue
            weight = module.weight.detach()[idx] if module.affine else torch.ones(len(idx))
            bias = module.bias.detach()[idx] if module.affine else torch.zeros(len(idx))
            const = bias - module.running_mean[idx] * weight / torch.sqrt(module.running_var[idx] + module.eps)
            producers_zero &= _all_zero(const) or (bool((const <= 0).all()) and _relu_only(dg, module))
        elif any(p.numel() for p in module.parameters(recurse=False)) if isinstance(module, nn.Module) else False:
            producers_zero = consumers_zero = False  # a layer with weights this module does not reason about
    return (n_producers > 0 and producers_zero) or (n_consumers > 0 and consumers_zero)


def _output_layer(model: nn.Module) -> nn.Module | None:
    last = None
    for m in model.modules():
        if isinstance(m, _PRODUCERS):
            last = m
    return last


def dead_channels(model: nn.Module, example_inputs: Any) -> tuple[Any, list[tuple[nn.Module, Any, list[int], int]]]:
    """Torch-Pruning's dependency graph of ``model`` and its dead channels, per group.

    Returns:
        ``(graph, rows)``, one row ``(root module, pruning function, dead channel indices, channels)`` per group.

    Raises:
        ValueError: Torch-Pruning cannot trace ``model`` (the message names the model's class and the error).
    """
    import torch_pruning as tp

    try:
        dg = tp.DependencyGraph().build_dependency(model, example_inputs=example_inputs)
        ignored = [m for m in [_output_layer(model)] if m is not None]
        groups = list(dg.get_all_groups(ignored_layers=ignored, root_module_types=list(_PRODUCERS)))
    except Exception as err:  # torch-pruning raises whatever its tracer meets
        raise ValueError(
            f"Invalid model for thin: Torch-Pruning could not trace {type(model).__name__}: {type(err).__name__}: {err}"
        ) from err
    rows = []
    for group in groups:
        dep, idxs = group.items[0]
        root, fn, n = dep.target.module, dep.handler, len(idxs)
        dead = [j for j in range(n) if _is_dead(dg, dg.get_pruning_group(root, fn, idxs=[j]))]
        if len(dead) == n:
            dead = dead[1:]  # keep one channel: no layer may become empty
        rows.append((root, fn, dead, n))
    return dg, rows


def thin(model: nn.Module, example_inputs: Tensor | tuple[Tensor, ...]) -> tuple[nn.Module, ThinReport]:
    """A copy of ``model`` (in eval mode) without its dead channels, and a report.

    Args:
        model: the network, pruning masks baked in (see :func:`lightning_grda.export.bake_masks`). Not modified.
        example_inputs: an input (or a tuple of inputs) Torch-Pruning traces the network with; also used to
            check that the outputs did not change.

    Returns:
        ``(thinned, report)``. ``thinned`` computes the same outputs as ``model`` in eval mode (up to float rounding
        of the smaller sums).

    Raises:
        ValueError: Torch-Pruning cannot trace the model (the message names its class), or the thinned network's
            outputs differ from the original's (a dead-channel decision was wrong: please report it).

    Example:
        >>> net = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2)).eval()
        >>> with torch.no_grad():
        ...     net[0].weight[:3] = 0; net[0].bias[:3] = 0
        >>> small, report = thin(net, torch.randn(1, 4))
        >>> small[0].out_features, report.params_before, report.params_after
        (3, 44, 23)
    """
    import torch_pruning as tp

    model = copy.deepcopy(model).eval()
    inputs = example_inputs if isinstance(example_inputs, tuple) else (example_inputs,)
    with torch.no_grad():
        reference = model(*inputs)
    report = ThinReport()
    report.macs_before, report.params_before = (int(x) for x in tp.utils.count_ops_and_params(model, inputs))
    names = {m: n for n, m in model.named_modules()}
    _, rows = dead_channels(model, inputs)
    for root, _fn, dead, n in rows:
        report.layers.append((names.get(root, type(root).__name__), n, len(dead)))
    dg = tp.DependencyGraph().build_dependency(model, example_inputs=inputs)
    for root, fn, dead, _n in rows:
        if dead:
            dg.get_pruning_group(root, fn, idxs=dead).prune()
    report.macs_after, report.params_after = (int(x) for x in tp.utils.count_ops_and_params(model, inputs))
    with torch.no_grad():
        try:
            out = model(*inputs)
        except RuntimeError as err:
            raise ValueError(f"thin broke {type(model).__name__}: {err}; please report it") from err
    report.max_abs_diff = float((out - reference).abs().max()) if out.numel() else 0.0
    scale = float(reference.abs().max()) if reference.numel() else 0.0
    if report.max_abs_diff > 1e-5 * max(1.0, scale):
        raise ValueError(
            f"thin changed the outputs of {type(model).__name__} by {report.max_abs_diff:.3g}: a dead-channel "
            "decision was wrong"
        )
    return model, report
