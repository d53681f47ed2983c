"""The compact sparse weight file: a safetensors file whose sparse tensors are stored as a bit mask plus values.

gRDA leaves most weights exactly zero, yet a checkpoint stores every zero at full size. :func:`save_sparse` writes
each floating tensor for which it saves space as two safetensors entries, ``<name>::mask`` (one bit per element,
``uint8``, most significant bit first, as ``numpy.packbits``) and ``<name>::values`` (its nonzeros in their own
dtype, in row-major order); every other tensor is stored as it is. At sparsity ``s`` a float32 tensor shrinks to
``1/32 + (1 - s)`` of its dense size. The header's metadata names the format, its version, and each tensor's
encoding, shape and dtype, so :func:`load_sparse` rebuilds every tensor exactly and rejects anything else.

Loading runs no code: safetensors is a JSON header plus raw bytes, read without pickle, so a file from a stranger
cannot execute anything (a Lightning ``.ckpt`` is a pickle).

.. note::
    A ``-0.0`` in a sparse-encoded tensor is a zero, so it comes back as ``0.0`` (they compare equal; only the sign
    bit differs). Every other value, NaN and infinities included, comes back bitwise.

Packing is vectorised, no Python loop over elements (``numpy.packbits`` on the CPU, torch ops on other devices);
files are written to a temporary file beside the output and renamed, so a failed write never leaves a partial file.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["FORMAT", "FORMAT_VERSION", "SparseFileReport", "TensorRow", "load_sparse", "save_sparse"]

FORMAT = "lightning-grda-sparse"
"""The ``format`` entry of the header's metadata that marks a file as ours."""

FORMAT_VERSION = "1"
"""The version of the encoding; a reader refuses versions it does not know."""

_MASK, _VALUES = "::mask", "::values"
_BITS = torch.tensor([128, 64, 32, 16, 8, 4, 2, 1], dtype=torch.uint8)
_DTYPES = {
    str(d).removeprefix("torch."): d
    for d in (
        torch.float64,
        torch.float32,
        torch.float16,
        torch.bfloat16,
        torch.int64,
        torch.int32,
        torch.int16,
        torch.int8,
        torch.uint8,
        torch.bool,
    )
}


@dataclass(frozen=True)
class TensorRow:
    """One tensor of a :class:`SparseFileReport`."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    nonzeros: int
    dense_bytes: int
    stored_bytes: int
    encoding: str


@dataclass
class SparseFileReport:
    """What :func:`save_sparse` wrote: one :class:`TensorRow` per tensor, and the totals.

    ``file_bytes`` is the size of the written file (tensors plus header). ``print(report)`` shows a plain table;
    :meth:`table` returns the :class:`rich.table.Table` (with a Total row) that the ``export`` command prints.
    """

    path: Path
    rows: list[TensorRow] = field(default_factory=list)
    file_bytes: int = 0

    @property
    def numel(self) -> int:
        """The number of elements of all floating tensors (the parameters and float buffers)."""
        return sum(_numel(r.shape) for r in self.rows if r.dtype.startswith(("float", "bfloat")))

    @property
    def nonzeros(self) -> int:
        """The nonzeros of all floating tensors."""
        return sum(r.nonzeros for r in self.rows if r.dtype.startswith(("float", "bfloat")))

    @property
    def dense_bytes(self) -> int:
        """The bytes of all tensors stored dense."""
        return sum(r.dense_bytes for r in self.rows)

    @property
    def stored_bytes(self) -> int:
        """The bytes of all tensors as stored in the file (header excluded)."""
        return sum(r.stored_bytes for r in self.rows)

    @property
    def sparsity(self) -> float:
        """The fraction of zeros among the floating tensors' elements."""
        return 1.0 - self.nonzeros / self.numel if self.numel else 0.0

    def summary(self) -> str:
        """One line: parameters, nonzeros, sparsity, dense size, file size, ratio."""
        ratio = self.file_bytes / self.dense_bytes if self.dense_bytes else float("nan")
        return (
            f"{self.numel:,} floating elements, {self.nonzeros:,} nonzero ({self.sparsity:.2%} sparse); "
            f"dense {_size(self.dense_bytes)}, file {_size(self.file_bytes)} ({ratio:.3f}x dense): {self.path}"
        )

    def table(self) -> Any:
        """The per-tensor :class:`rich.table.Table`, with a Total row."""
        from rich.table import Table

        table = Table(title=f"Sparse export: {self.path.name}")
        for col in ("tensor", "shape", "dtype", "nonzeros", "dense", "stored", "encoding"):
            table.add_column(col, justify="left" if col in ("tensor", "dtype", "encoding") else "right")
        for r in self.rows:
            table.add_row(
                r.name,
                "x".join(map(str, r.shape)) or "()",
                r.dtype,
                f"{r.nonzeros:,}",
                _size(r.dense_bytes),
                _size(r.stored_bytes),
                r.encoding,
            )
        table.add_section()
        table.add_row("Total", "", "", f"{self.nonzeros:,}", _size(self.dense_bytes), _size(self.file_bytes), "(file)")
        return table

    def __str__(self) -> str:
        from rich.console import Console

        console = Console(width=120, record=True, file=open(os.devnull, "w"))  # noqa: SIM115 - closed by the GC
        console.print(self.table())
        return console.export_text() + self.summary()


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB"):
        if n < 1024 or unit == "MiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n:.1f} GiB"  # pragma: no cover


def pack_bits(mask: Tensor) -> Tensor:
    """A flat bool tensor as ``uint8`` bytes, eight elements per byte, most significant bit first; zero-padded."""
    if mask.device.type == "cpu":  # numpy's packbits is one C loop, several times faster than the torch ops below
        import numpy as np

        return torch.from_numpy(np.packbits(mask.reshape(-1).numpy()))
    return _pack_torch(mask)


def _pack_torch(mask: Tensor) -> Tensor:
    flat = mask.reshape(-1).to(torch.uint8)
    pad = (-flat.numel()) % 8
    if pad:
        flat = torch.cat([flat, flat.new_zeros(pad)])
    return (flat.view(-1, 8) * _BITS.to(flat.device)).sum(dim=1, dtype=torch.uint8)


def unpack_bits(packed: Tensor, numel: int) -> Tensor:
    """The inverse of :func:`pack_bits`: the first ``numel`` bits of ``packed`` as a flat bool tensor."""
    if packed.device.type == "cpu":
        import numpy as np

        return torch.from_numpy(np.unpackbits(packed.numpy(), count=numel).astype(bool))
    return _unpack_torch(packed, numel)


def _unpack_torch(packed: Tensor, numel: int) -> Tensor:
    bits = packed.view(-1, 1) & _BITS.to(packed.device)
    return (bits != 0).view(-1)[:numel]


def _state_dict(source: nn.Module | Mapping[str, Tensor]) -> dict[str, Tensor]:
    if isinstance(source, nn.Module):
        return dict(source.state_dict())
    if isinstance(source, Mapping) and all(isinstance(k, str) and isinstance(v, Tensor) for k, v in source.items()):
        return dict(source)
    raise ValueError(f"Invalid source: {type(source).__name__}; expected an nn.Module or a state dict (str to Tensor)")


def save_sparse(source: nn.Module | Mapping[str, Tensor], path: str | os.PathLike[str]) -> SparseFileReport:
    """Write the weights of ``source`` to ``path`` as a compact safetensors file.

    Args:
        source: a module (its ``state_dict()``) or a state dict. Tensors may live on any device.
        path: the output file; its folder must exist. Written to a temporary file first, then renamed.

    Returns:
        The report: one row per tensor (name, shape, dtype, nonzeros, dense and stored bytes, encoding).

    Raises:
        ValueError: ``source`` is not a module or a state dict, or holds a tensor of a dtype safetensors cannot
            store (the message names it).
        OSError: the file cannot be written (nothing is left behind).

    Example:
        >>> import tempfile, torch
        >>> w = torch.zeros(100, 100); w[0, :5] = 1.0
        >>> path = tempfile.mkdtemp() + "/w.safetensors"
        >>> report = save_sparse({"w": w}, path)
        >>> report.rows[0].nonzeros, report.rows[0].dense_bytes, report.rows[0].stored_bytes
        (5, 40000, 1270)
        >>> torch.equal(load_sparse(path)["w"], w)
        True
    """
    from safetensors.torch import save_file

    path = Path(path)
    tensors: dict[str, Tensor] = {}
    entries: dict[str, dict[str, Any]] = {}
    report = SparseFileReport(path)
    for name, tensor in _state_dict(source).items():
        if _MASK in name or _VALUES in name:
            raise ValueError(f"Invalid tensor name: {name!r}; names must not contain {_MASK!r} or {_VALUES!r}")
        t = tensor.detach()
        dtype = str(t.dtype).removeprefix("torch.")
        if dtype not in _DTYPES:
            raise ValueError(
                f"Invalid tensor {name!r}: dtype {dtype} is not supported; expected one of {list(_DTYPES)}"
            )
        numel, item = t.numel(), t.element_size()
        dense = numel * item
        nonzero = t != 0
        nnz = int(nonzero.sum())
        packed_size = (numel + 7) // 8 + nnz * item
        if t.is_floating_point() and packed_size < dense:
            tensors[name + _MASK] = pack_bits(nonzero).cpu()
            tensors[name + _VALUES] = t.reshape(-1)[nonzero.reshape(-1)].cpu()
            encoding, stored = "bitmask", packed_size
        else:
            tensors[name] = t.cpu().clone().contiguous()  # clone: safetensors refuses tensors sharing storage
            encoding, stored = "dense", dense
        entries[name] = {"encoding": encoding, "shape": list(t.shape), "dtype": dtype}
        report.rows.append(TensorRow(name, tuple(t.shape), dtype, nnz, dense, stored, encoding))
    from lightning_grda import __version__

    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "lightning_grda_version": __version__,
        "tensors": json.dumps(entries),
    }
    _atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))
    report.file_bytes = path.stat().st_size
    return report


def _atomic_write(path: Path, write: Any) -> None:
    """Call ``write(tmp)`` on a temporary file in ``path``'s folder, then rename it to ``path``."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _bad(path: Path, name: str, why: str) -> ValueError:
    return ValueError(f"Invalid sparse file {str(path)!r}: tensor {name!r} {why}")


def load_sparse(path: str | os.PathLike[str], model: nn.Module | None = None) -> Any:
    """Read a file written by :func:`save_sparse`; no pickle, no code runs.

    Args:
        path: the file.
        model: if given, the state dict is loaded into it (strictly) and the model is returned.

    Returns:
        The state dict (CPU tensors, every one as saved but ``-0.0`` read as ``0.0``), or ``model``.

    Raises:
        ValueError: the file is missing, not a safetensors file, not one of ours, truncated, or inconsistent
            (a mask whose popcount differs from the number of values, a wrong shape or dtype); the message names
            the file and, where it can, the tensor.
    """
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"Invalid sparse file: {str(path)!r} does not exist or is not a file")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
            stored = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open is not a mapping
    except (SafetensorError, OSError, RuntimeError) as err:
        raise ValueError(f"Invalid sparse file {str(path)!r}: not a readable safetensors file ({err})") from err
    if metadata.get("format") != FORMAT:
        raise ValueError(
            f"Invalid sparse file {str(path)!r}: not a lightning-grda sparse file (no format={FORMAT!r} in its "
            "metadata); plain safetensors files are read with safetensors.torch.load_file"
        )
    if metadata.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"Invalid sparse file {str(path)!r}: format version {metadata.get('format_version')!r}; this "
            f"lightning-grda reads version {FORMAT_VERSION}"
        )
    try:
        entries = json.loads(metadata["tensors"])
    except (KeyError, ValueError) as err:
        raise ValueError(f"Invalid sparse file {str(path)!r}: its tensor table is missing or not JSON") from err
    state: dict[str, Tensor] = {}
    expected: set[str] = set()
    for name, entry in entries.items():
        state[name] = _decode(path, name, entry, stored)
        expected |= {name + _MASK, name + _VALUES} if entry.get("encoding") == "bitmask" else {name}
    extra = sorted(set(stored) - expected)
    if extra:
        raise _bad(path, extra[0], "is stored but not listed in the file's tensor table")
    if model is None:
        return state
    model.load_state_dict(state, strict=True)
    return model


def _decode(path: Path, name: str, entry: Any, stored: Mapping[str, Tensor]) -> Tensor:
    try:
        encoding, shape, dtype_name = entry["encoding"], tuple(int(s) for s in entry["shape"]), entry["dtype"]
        dtype = _DTYPES[dtype_name]
    except (KeyError, TypeError, ValueError) as err:
        raise _bad(path, name, f"has a malformed table entry {entry!r}") from err
    numel = _numel(shape)
    if encoding == "dense":
        if name not in stored:
            raise _bad(path, name, "is missing")
        t = stored[name]
        if tuple(t.shape) != shape or t.dtype != dtype:
            raise _bad(path, name, f"is {tuple(t.shape)} {t.dtype}, but the table says {shape} {dtype_name}")
        return t
    if encoding != "bitmask":
        raise _bad(path, name, f"has an unknown encoding {encoding!r}")
    if name + _MASK not in stored or name + _VALUES not in stored:
        raise _bad(path, name, "is missing its mask or its values")
    packed, values = stored[name + _MASK], stored[name + _VALUES]
    if packed.dtype != torch.uint8 or tuple(packed.shape) != ((numel + 7) // 8,):
        raise _bad(path, name, f"has a mask of {tuple(packed.shape)} {packed.dtype} for shape {shape}")
    if values.dtype != dtype or values.dim() != 1:
        raise _bad(path, name, f"has values of {tuple(values.shape)} {values.dtype}, expected a flat {dtype_name}")
    bits = unpack_bits(packed, len(packed) * 8)
    if bits[numel:].any():
        raise _bad(path, name, "has mask bits set beyond its last element")
    keep = bits[:numel]
    count = int(keep.sum())
    if count != values.numel():
        raise _bad(path, name, f"has a mask with {count} set bits but {values.numel()} values")
    if count and bool((values == 0).any()):
        raise _bad(path, name, "has a zero among its values (the mask marks it nonzero)")
    out = torch.zeros(numel, dtype=dtype)
    out[keep] = values
    return out.view(shape)
