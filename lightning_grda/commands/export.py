"""``lightning-grda export CKPT``: write the compact sparse file (and, with ``--thin``, a thinned ONNX/.pt2 model).

The weights are read with :func:`lightning_grda.weights.read_state_dict` (a Lightning checkpoint's ``state_dict``,
a plain state dict, a module saved with ``torch.save`` given ``--trust-pickle``, or a safetensors file); pruning
masks are baked in; :func:`lightning_grda.export.save_sparse` writes them. The per-tensor table and a total line are
printed. ``--thin`` also rebuilds the model from the checkpoint's hyperparameters, removes its dead channels
(:func:`lightning_grda.export.thin`) and writes it in a format that runs without this pack, chosen by ``--format``:
ONNX (the default, as before ``--format`` existed; onnxruntime, TensorRT...: needs the ``export`` extra), ``pt2``
(a ``torch.export`` program, rebuilt by ``torch.export.load``: needs only torch) or ``both``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["FORMATS", "HELP", "main"]

HELP = "write a pruned model's weights as a compact, pickle-free sparse safetensors file (--thin: a thinned model)"

FORMATS = ("onnx", "pt2", "both")
"""The values of ``--format``: the thinned model's file formats."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lightning-grda export", description=HELP)
    p.add_argument("ckpt", help="a Lightning checkpoint, a state dict or module saved with torch.save, or safetensors")
    p.add_argument("-o", "--output", help="the output file (default: CKPT with the suffix .safetensors)")
    p.add_argument(
        "--trust-pickle",
        action="store_true",
        help="read a module saved whole with torch.save(model) by full unpickling (runs code: trusted files only)",
    )
    p.add_argument(
        "--thin",
        action="store_true",
        help="also remove dead channels and write the thinner dense model (as ONNX unless --format says otherwise)",
    )
    p.add_argument(
        "--format",
        metavar="{onnx,pt2,both}",
        help="--thin: the thinned model's file, named as the output with another suffix: 'onnx' (the default; .onnx, "
        "needs the export extra), 'pt2' (a torch.export program, .pt2, read back by torch.export.load; needs only "
        "torch) or 'both'",
    )
    p.add_argument(
        "--input-shape",
        type=int,
        nargs="+",
        metavar="N",
        help="--thin: one input's shape without the batch (default: from the checkpoint's datamodule, else 1 8 8)",
    )
    return p


def main(args: list[str]) -> int:
    """Run ``lightning-grda export`` on ``args`` (without the subcommand); return the exit status."""
    from rich.console import Console

    from lightning_grda.export import bake_masks, save_sparse
    from lightning_grda.weights import read_state_dict

    opts = _parser().parse_args(args)
    ckpt = Path(opts.ckpt)
    out = Path(opts.output) if opts.output else ckpt.with_suffix(".safetensors")
    console = Console()
    try:
        _check_format(opts)
    except ValueError as err:
        console.print(f"error: {err}", markup=False, highlight=False, soft_wrap=True)
        return 1
    try:
        state = bake_masks(read_state_dict(ckpt, weights_only=not opts.trust_pickle))
    except ValueError as err:
        console.print(f"error: {err}", markup=False, highlight=False)
        return 1
    if out.resolve() == ckpt.resolve():
        console.print(f"error: the output {str(out)!r} would overwrite the input; give -o", markup=False)
        return 1
    if out.is_dir():
        console.print(f"error: cannot write {str(out)!r}: it is a directory", markup=False, highlight=False)
        return 1
    try:
        report = save_sparse(state, out)
    except (OSError, ValueError) as err:
        console.print(f"error: cannot write {str(out)!r}: {err}", markup=False, highlight=False)
        return 1
    console.print(report.table())
    console.print(report.summary(), markup=False, highlight=False)
    if opts.thin:
        return _thin(ckpt, state, opts, console)
    return 0


def _check_format(opts: argparse.Namespace) -> None:
    """Resolve ``opts.format`` (default ``onnx``); refuse an unknown value, or ``--format`` without ``--thin``."""
    from lightning_grda.checks import check_choice, invalid

    if opts.format is None:
        opts.format = "onnx"
        return
    check_choice("--format", opts.format, FORMATS)
    if not opts.thin:
        raise invalid("--format", opts.format, "it with --thin (--format is the thinned model's format)")


def _thin(ckpt: Path, state: dict, opts: argparse.Namespace, console) -> int:  # noqa: ANN001 - rich Console
    from lightning_grda.export.model_rebuild import rebuild_model
    from lightning_grda.export.onnx import save_onnx
    from lightning_grda.export.pt2 import save_pt2
    from lightning_grda.export.thin import thin

    try:
        model, input_shape = rebuild_model(ckpt, state, weights_only=not opts.trust_pickle)
    except ValueError as err:
        console.print(f"error: {err}", markup=False, highlight=False)
        return 1
    shape = tuple(opts.input_shape) if opts.input_shape else input_shape
    import torch

    example = torch.randn(1, *shape)
    try:
        thinned, report = thin(model, example)
    except ValueError as err:
        console.print(f"error: {err}", markup=False, highlight=False)
        return 1
    console.print(report.table())
    console.print(report.summary(), markup=False, highlight=False)
    stem = Path(opts.output) if opts.output else ckpt
    formats = ("onnx", "pt2") if opts.format == "both" else (opts.format,)
    for fmt in formats:
        path = stem.with_suffix(f".{fmt}")
        try:
            if fmt == "onnx":
                save_onnx(thinned, example, path)
            else:
                save_pt2(thinned, example, path)
        except ImportError as err:
            console.print(
                f"error: cannot write {str(path)!r}: {err} (pip install 'lightning-grda[export]', or --format pt2)",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
            return 1
        except (OSError, ValueError) as err:
            console.print(f"error: cannot write {str(path)!r}: {err}", markup=False, highlight=False, soft_wrap=True)
            return 1
        console.print(f"thinned model: {path}", markup=False, highlight=False, soft_wrap=True)
    return 0
