"""Write a network as a ``torch.export`` program (``.pt2``): rebuilt by ``torch.export.load``, without this pack.

Used for the thinned model of ``lightning-grda export --thin --format pt2``. The file holds the graph (ATen
operators) and the weights; ``torch.export.load(path).module()`` is a callable ``nn.Module`` in any Python with the
same (or a newer) torch, no class of the original code needed, and the program can be compiled ahead of time
(AOTInductor) or lowered to ExecuTorch. Only torch is needed, unlike ONNX's ``export`` extra.

The batch dimension is dynamic (``torch.export.Dim``, any size >= 1). torch.export specialises a dimension whose
example size is 1 to the constant 1, so an example batch of 1 is traced as a batch of 2 (the example repeated).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor, nn

from lightning_grda.checks import invalid

__all__ = ["check_pt2", "save_pt2"]


def _as_tuple(example_inputs: Tensor | tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    inputs = example_inputs if isinstance(example_inputs, tuple) else (example_inputs,)
    if not inputs or not all(isinstance(x, Tensor) and x.dim() >= 1 for x in inputs):
        raise invalid("example_inputs", example_inputs, "a batch-first tensor or a tuple of them")
    return inputs


def save_pt2(
    model: nn.Module,
    example_inputs: Tensor | tuple[Tensor, ...],
    path: str | os.PathLike[str],
    *,
    check: bool = True,
) -> float | None:
    """Export ``model`` (eval mode) with ``torch.export`` to ``path`` with a dynamic batch dimension; atomically.

    Args:
        model: the network (put in eval mode).
        example_inputs: an example input, or a tuple of them, batch first (the same batch size for each).
        path: the output file; its name should end in ``.pt2`` (``torch.export.load`` expects it).
        check: load the file back and compare its outputs on ``example_inputs`` with the model's.

    Returns:
        With ``check``, the max absolute difference between the loaded program's and the model's outputs; else None.

    Raises:
        ValueError: ``path`` is a folder or its folder does not exist; ``example_inputs`` is not batch-first
            tensors; torch.export cannot export ``model`` (the message names its class); or, with ``check``, the
            loaded program's outputs differ from the model's by more than ``1e-5``.

    Example:
        >>> import tempfile
        >>> net = nn.Sequential(nn.Linear(4, 3), nn.ReLU())
        >>> path = Path(tempfile.mkdtemp()) / "net.pt2"
        >>> save_pt2(net, torch.randn(1, 4), path)
        0.0
        >>> torch.export.load(path).module()(torch.randn(5, 4)).shape
        torch.Size([5, 3])
    """
    from lightning_grda.export.sparse_file import _atomic_write

    path = Path(path)
    if path.is_dir() or not path.parent.is_dir():
        raise invalid("path", str(path), "a file in an existing folder")
    inputs = _as_tuple(example_inputs)
    model = model.eval()
    traced = tuple(torch.cat([x, x]) if x.shape[0] == 1 else x for x in inputs)  # size 1 would be specialised
    batch = torch.export.Dim("batch", min=1)
    try:
        program = torch.export.export(model, traced, dynamic_shapes=tuple({0: batch} for _ in traced))
    except Exception as err:  # torch.export raises several types (UserError, Unsupported, RuntimeError...)
        raise ValueError(
            f"Invalid model for save_pt2: torch.export could not export {type(model).__name__} with a dynamic "
            f"batch: {type(err).__name__}: {err}"
        ) from err

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:  # a file object: torch.export.save wants a name ending in .pt2 or a buffer
            torch.export.save(program, f)

    _atomic_write(path, write)
    if not check:
        return None
    diff = check_pt2(model, path, inputs)
    if diff > 1e-5:
        raise ValueError(f"Invalid pt2 export {str(path)!r}: the loaded program's outputs differ by {diff:.3g}")
    return diff


def check_pt2(model: nn.Module, path: str | os.PathLike[str], inputs: Tensor | tuple[Tensor, ...]) -> float:
    """The max absolute difference between ``model(*inputs)`` (eval mode) and the ``.pt2`` file's program."""
    inputs = _as_tuple(inputs)
    loaded = torch.export.load(Path(path)).module()
    with torch.no_grad():
        got = loaded(*inputs)
        want = model.eval()(*inputs)
    return float((got - want).abs().max()) if want.numel() else 0.0
