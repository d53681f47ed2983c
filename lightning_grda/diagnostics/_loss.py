"""The training loss of a LightningModule on one batch, and the parameter/state-dict bookkeeping the diagnostics share.

Private: helpers for :mod:`lightning_grda.diagnostics`, no public API.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from lightning_grda.checks import invalid


def training_loss(module: nn.Module, batch: Any) -> Tensor:
    """``module.training_step(batch, 0)`` as a scalar tensor (a ``{"loss": ...}`` dict is accepted too).

    ``self.log`` calls inside ``training_step`` warn outside a Trainer; they are silenced here.

    Raises:
        ValueError: ``training_step`` returned no loss (``None``, or not a scalar tensor).
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*self.log.*")
        warnings.filterwarnings("ignore", message=".*trainer.*")
        out = module.training_step(batch, 0)
    if isinstance(out, Mapping):
        out = out.get("loss")
    if not isinstance(out, Tensor) or out.numel() != 1:
        raise ValueError(
            f"Invalid module: {type(module).__name__}.training_step returned {type(out).__name__}, not the loss; "
            "the diagnostics need a training_step that returns the loss tensor (or a dict with a 'loss' key)"
        )
    return out.reshape(())


class _StepModule(nn.Module):
    """Calls the wrapped module's ``training_step`` from ``forward``.

    ``torch.func.functional_call`` swaps a module's parameters only around a call of its ``forward``.
    """

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, batch: Any) -> Tensor:
        return training_loss(self.inner, batch)


def loss_at(module: nn.Module, params: Mapping[str, Tensor], batch: Any) -> Tensor:
    """The training loss of ``module`` on ``batch`` with its parameters replaced by ``params`` (differentiable)."""
    wrapper = _StepModule(module)
    return torch.func.functional_call(wrapper, {f"inner.{k}": v for k, v in params.items()}, (batch,), strict=False)


def param_names(module: nn.Module) -> list[str]:
    """The names of the trainable parameters of ``module``, in ``named_parameters`` order."""
    return [name for name, p in module.named_parameters() if p.requires_grad]


def check_state_dict(module: nn.Module, state: Mapping[str, Tensor], arg: str) -> None:
    """Check that ``state`` holds every tensor of ``module`` with its shape; the error names ``arg``.

    Raises:
        ValueError: a missing or unexpected key, or a shape that differs.
    """
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    extra = [k for k in state if k not in own]
    if missing or extra:
        raise invalid(
            arg,
            f"{len(state)} tensors",
            f"the tensors of {type(module).__name__}; missing {missing[:5]}, unexpected {extra[:5]} "
            "(a checkpoint of another model?)",
        )
    for k, v in own.items():
        if tuple(state[k].shape) != tuple(v.shape):
            raise invalid(arg, f"{k} of shape {tuple(state[k].shape)}", f"shape {tuple(v.shape)} as in the model")


def flat_params(state: Mapping[str, Tensor], names: Sequence[str]) -> Tensor:
    """The tensors ``names`` of ``state``, flattened and concatenated (float32, on their device)."""
    return torch.cat([state[n].detach().reshape(-1).float() for n in names])


def load_params(module: nn.Module, params: Mapping[str, Tensor]) -> None:
    """Copy ``params`` (names to tensors) into ``module``'s parameters, in place."""
    own = dict(module.named_parameters())
    with torch.no_grad():
        for k, v in params.items():
            own[k].copy_(v)


def batches_to(batches: Sequence[Any], device: torch.device) -> list[Any]:
    """Every batch moved to ``device`` (tensors inside tuples, lists and dicts)."""
    from lightning.fabric.utilities.apply_func import move_data_to_device

    return [move_data_to_device(b, device) for b in batches]


ProgressFn = Callable[[int], None]
