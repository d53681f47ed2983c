"""Write a network as ONNX, a file that runs without this pack (or PyTorch): onnxruntime, TensorRT, OpenVINO...

Used for the thinned model of ``lightning-grda export --thin``. The batch dimension is dynamic. The ``onnx``,
``onnxscript`` (torch's exporter) and ``onnxruntime`` (the check) packages come with the ``export`` extra:
``pip install lightning-grda[export]``.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor, nn

__all__ = ["check_onnx", "save_onnx"]


def save_onnx(model: nn.Module, example: Tensor, path: str | os.PathLike[str], *, check: bool = True) -> float | None:
    """Export ``model`` (eval mode) to ONNX at ``path`` with a dynamic batch dimension; written atomically.

    Args:
        model: the network (one tensor in, one tensor out).
        example: an example input, batch first.
        path: the output ``.onnx`` file.
        check: run the file with onnxruntime on ``example`` and compare with the model (needs ``onnxruntime``).

    Returns:
        With ``check``, the max absolute difference between onnxruntime's and torch's outputs; else None.

    Raises:
        ImportError: the ``export`` extra is not installed.
        ValueError: with ``check``, onnxruntime's outputs differ from the model's by more than ``1e-4``.
    """
    from lightning_grda.export.sparse_file import _atomic_write

    model = model.eval()
    batch = torch.export.Dim("batch", min=1)

    def write(tmp: str) -> None:
        program = torch.onnx.export(
            model, (example,), dynamic_shapes=({0: batch},), input_names=["input"], output_names=["output"]
        )
        program.save(tmp)

    path = Path(path)
    _atomic_write(path, write)
    if not check:
        return None
    diff = check_onnx(model, path, example)
    if diff > 1e-4:
        raise ValueError(f"Invalid ONNX export {str(path)!r}: onnxruntime's outputs differ from torch's by {diff:.3g}")
    return diff


def check_onnx(model: nn.Module, path: str | os.PathLike[str], inputs: Tensor) -> float:
    """The max absolute difference between ``model(inputs)`` and the ONNX file's outputs under onnxruntime (CPU)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {session.get_inputs()[0].name: inputs.detach().cpu().numpy()})
    with torch.no_grad():
        want = model.eval()(inputs).cpu()
    return float((torch.from_numpy(got) - want).abs().max())
