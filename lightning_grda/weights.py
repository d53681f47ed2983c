"""Reading model weights from the files users have: one function every command that takes weights calls.

``fit --init_from``, ``export`` and ``diagnose`` all start from "a file with weights in it". The file may be a
Lightning checkpoint (any LightningModule's: its ``state_dict`` entry), a plain state dict saved with
``torch.save``, a whole module saved with ``torch.save``, or a ``.safetensors`` file. :func:`read_state_dict`
tells them apart by their first bytes (not by their names), and turns every problem into one ``ValueError`` that
names the file.

Pickle: torch files are read with ``torch.load(weights_only=True)``, torch's restricted unpickler, which refuses to
run code. A whole module saved with ``torch.save(model)`` can only be read by full unpickling, which can execute
code from the file: it needs ``weights_only=False``, for files you trust. Safetensors files involve no pickle at all.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["read_state_dict", "weight_format"]


def weight_format(path: str | os.PathLike[str]) -> str:
    """The kind of weight file at ``path``, from its first bytes: ``"safetensors"`` or ``"torch"``.

    Raises:
        ValueError: the path does not exist, is a directory, is empty, or is neither kind of file.
    """
    path = Path(path)
    if not path.exists():
        raise ValueError(f"Invalid weights file: {str(path)!r} does not exist")
    if path.is_dir():
        raise ValueError(f"Invalid weights file: {str(path)!r} is a directory, expected a file")
    size = path.stat().st_size
    if size == 0:
        raise ValueError(f"Invalid weights file: {str(path)!r} is empty (0 bytes): was it written completely?")
    with path.open("rb") as f:
        head = f.read(9)
    if head[:2] == b"PK" or head[:1] == b"\x80":  # torch.save's zip archive, or its legacy pickle
        return "torch"
    if len(head) == 9 and head[8:9] == b"{" and 8 + int.from_bytes(head[:8], "little") <= size:
        return "safetensors"
    raise ValueError(
        f"Invalid weights file: {str(path)!r} is neither a torch file (torch.save, a Lightning .ckpt) nor a "
        "safetensors file"
    )


def read_state_dict(path: str | os.PathLike[str], *, weights_only: bool = True) -> dict[str, Tensor]:
    """The model weights stored in ``path``, as a state dict of tensors on the CPU.

    Args:
        path: a Lightning checkpoint (its ``state_dict``), a state dict or a module saved with ``torch.save``, or a
            ``.safetensors`` file (plain, or the compact one of :func:`lightning_grda.export.save_sparse`).
        weights_only: read torch files with torch's restricted unpickler, which runs no code (default). A module
            saved whole with ``torch.save(model)`` needs ``False``: full unpickling, for files you trust.

    Returns:
        The state dict: parameter and buffer names to tensors. A Lightning checkpoint's optimizer, loop and callback
        states are left out.

    Raises:
        ValueError: the file is missing, a directory, empty, truncated, not a weight file, or holds no state dict;
            the message names the file.
    """
    kind = weight_format(path)
    name = str(path)
    if kind == "safetensors":
        return _read_safetensors(Path(path))
    try:
        obj = torch.load(path, map_location="cpu", weights_only=weights_only)
    except Exception as err:  # torch raises UnpicklingError, RuntimeError, EOFError... for bad files
        hint = ""
        if weights_only and "weights_only" in str(err):
            hint = (
                " It holds Python objects that torch's safe loader refuses (a whole module saved with "
                "torch.save(model)?); load it with weights_only=False only if you trust the file."
            )
        raise ValueError(
            f"Invalid weights file: {name!r} could not be read: {type(err).__name__}: {err}.{hint}"
        ) from err
    return _state_dict_of(obj, name)


def _state_dict_of(obj: Any, name: str) -> dict[str, Tensor]:
    if isinstance(obj, nn.Module):
        return {k: v.detach() for k, v in obj.state_dict().items()}
    if isinstance(obj, Mapping):
        if "state_dict" in obj and isinstance(obj["state_dict"], Mapping):  # a Lightning checkpoint
            obj = obj["state_dict"]
        elif "pytorch-lightning_version" in obj:
            raise ValueError(f"Invalid weights file: {name!r} is a Lightning checkpoint without a 'state_dict' entry")
        if obj and all(isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items()):
            return dict(obj)
    raise ValueError(
        f"Invalid weights file: {name!r} holds a {type(obj).__name__}, not a state dict (names to tensors), a "
        "module or a Lightning checkpoint"
    )


def _read_safetensors(path: Path) -> dict[str, Tensor]:
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    from lightning_grda.export.sparse_file import FORMAT, load_sparse

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
        if metadata.get("format") == FORMAT:  # the compact file of lightning_grda.export.save_sparse
            return load_sparse(path)
        return load_file(path, device="cpu")
    except (SafetensorError, OSError) as err:
        raise ValueError(f"Invalid weights file: {str(path)!r} could not be read as safetensors: {err}") from err
