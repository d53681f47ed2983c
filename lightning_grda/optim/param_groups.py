"""Param groups for gRDA: which parameters to exempt, the pruned/exempt split, whether an lr is an SGD lr.

Pure torch, shared by :class:`~lightning_grda.mixin.GRDAMixin` (``grda_exempt_norm_and_bias``) and
:class:`~lightning_grda.callbacks.GRDASwap` (``exempt_norm_and_bias``). An exempt group gets ``c=0``, with which
gRDA's update is plain SGD: the parameter is trained but never thresholded. The paper prunes every parameter; the
exemption is an option.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from torch import nn
from torch.optim import Optimizer

__all__ = ["NORM_MODULES", "is_adaptive", "norm_and_bias_parameters", "split_exempt"]

#: The normalisation layers whose parameters ``exempt_norm_and_bias`` exempts from pruning. ``_NormBase`` covers
#: every BatchNorm, SyncBatchNorm and InstanceNorm (lazy ones included).
NORM_MODULES: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._NormBase,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.RMSNorm,
)


def norm_and_bias_parameters(module: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """The parameters that ``exempt_norm_and_bias`` keeps out of pruning: biases and normalisation parameters.

    A parameter is exempt when it has at most one dimension (biases, and the scales and shifts of most
    normalisation layers) or when it belongs to a normalisation module (an instance of one of
    :data:`NORM_MODULES`, found with ``named_modules``). Shared parameters are listed once, as in
    ``named_parameters``.

    Args:
        module: the module whose parameters are classified.

    Returns:
        ``(name, parameter)`` pairs, in ``named_parameters`` order.

    Example:
        >>> net = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.Linear(8, 2))
        >>> [name for name, _ in norm_and_bias_parameters(net)]
        ['0.bias', '1.weight', '1.bias', '2.bias']
    """
    in_norm = {id(p) for m in module.modules() if isinstance(m, NORM_MODULES) for p in m.parameters(recurse=False)}
    return [(name, p) for name, p in module.named_parameters() if p.ndim <= 1 or id(p) in in_norm]


def split_exempt(groups: Sequence[dict[str, Any]], exempt: Collection[int]) -> list[dict[str, Any]]:
    """Split each param group into its pruned parameters and its exempt ones (``c=0``), all pruned groups first.

    Each new group keeps the other keys of its group (and the matching ``param_names`` when present); a part with no
    parameters is left out. With nothing exempt the groups come back as they were, copied.

    Args:
        groups: param groups (dicts with ``"params"``), e.g. an optimizer's ``param_groups`` or ``[{"params": ...}]``.
        exempt: the ``id`` of each parameter to exempt (see :func:`norm_and_bias_parameters`).

    Returns:
        The pruned groups in their order, then the exempt groups in theirs, so group 0 is pruned when any is.

    Example:
        >>> net = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8))
        >>> exempt = {id(p) for _, p in norm_and_bias_parameters(net)}
        >>> groups = split_exempt([{"params": list(net.parameters()), "lr": 0.1}], exempt)
        >>> [(len(g["params"]), g["lr"], g.get("c")) for g in groups]
        [(1, 0.1, None), (3, 0.1, 0.0)]
    """
    pruned: list[dict[str, Any]] = []
    kept: list[dict[str, Any]] = []
    for group in groups:
        params = list(group["params"])
        names = group.get("param_names")
        for is_exempt, target in ((False, pruned), (True, kept)):
            chosen = [k for k, p in enumerate(params) if (id(p) in exempt) == is_exempt]
            if not chosen:
                continue
            new = {**group, "params": [params[k] for k in chosen]}
            if names is not None:
                new["param_names"] = [names[k] for k in chosen]
            if is_exempt:
                new["c"] = 0.0
            target.append(new)
    return pruned + kept


def is_adaptive(optimizer: Optimizer) -> bool:
    """Whether ``optimizer`` adapts its step per coordinate: a param group has ``betas`` or ``eps`` (Adam, RMSprop).

    Such an optimizer's learning rate is no SGD learning rate: :class:`~lightning_grda.callbacks.GRDASwap` refuses
    to keep it.

    Example:
        >>> import torch
        >>> params = [nn.Parameter(torch.zeros(1))]
        >>> is_adaptive(torch.optim.AdamW(params)), is_adaptive(torch.optim.SGD(params, lr=0.1, momentum=0.9))
        (True, False)
    """
    return any("betas" in group or "eps" in group for group in optimizer.param_groups)
