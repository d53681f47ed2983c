"""``lightning-grda diagnose --sgd A --grda B [--config CFG] [--top_k K] [--output DIR]``: check the paper's claims.

Reads two weight files of the same model (Lightning checkpoints, state dicts or safetensors files, through
:func:`lightning_grda.weights.read_state_dict`), builds the model and data from the config, and runs
:func:`lightning_grda.diagnostics.diagnose`: the share of ``w_gRDA - w_SGD`` on the Hessian's top-k eigenvectors,
the Bezier curve and straight line between the two minima, and ``||w||_2 / ||w||_1``. Writes
``DIR/diagnostics.json``, ``DIR/share.png`` and ``DIR/connectivity.png`` (the plots need matplotlib, the
``diagnose`` extra; without it the JSON is still written), and prints a rich summary.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

HELP = "check gRDA's directional claims: Hessian top-k share of w_gRDA - w_SGD, Bezier connectivity, norm ratios"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lightning-grda diagnose", description=HELP)
    p.add_argument("--sgd", required=True, help="weights of the SGD minimum (.ckpt, torch state dict, .safetensors)")
    p.add_argument("--grda", required=True, help="weights of the gRDA minimum, same model")
    p.add_argument("--config", default=None, help="the config that gives the model and data (default: digits)")
    p.add_argument("--top_k", type=int, default=10, help="Hessian eigenpairs K; shares for k = 1..K (default 10)")
    p.add_argument("--output", default="diagnostics", help="folder for diagnostics.json and the PNGs")
    p.add_argument("--batches", type=int, default=None, help="use the first N training batches only (all)")
    p.add_argument("--hessian_batches", type=int, default=None, help="of those, the first N for the Hessian (all)")
    p.add_argument("--tol", type=float, default=1e-4, help="relative accuracy of the eigenvalues (1e-4)")
    p.add_argument("--curve_epochs", type=int, default=5, help="epochs to train the Bezier control point (5)")
    p.add_argument("--curve_lr", type=float, default=0.05, help="its SGD learning rate, momentum 0.9 (0.05)")
    p.add_argument("--curve_points", type=int, default=11, help="evenly spaced t evaluated (11)")
    p.add_argument("--seed", type=int, default=0, help="seed of the Lanczos start and the t draws")
    p.add_argument("--device", default="auto", help="'cpu', 'cuda', 'cuda:1'... ('auto': cuda when available)")
    p.add_argument("--no_plots", action="store_true", help="write the JSON only")
    return p


def main(args: list[str]) -> int:
    """Run ``diagnose``; return 0 on success, 1 on bad input (the message says which argument)."""
    opts = _parser().parse_args(args)
    console = Console()
    from lightning_grda.diagnostics import diagnose, first_batches, from_config, plot_all, print_report
    from lightning_grda.weights import read_state_dict

    try:
        sgd = _read(read_state_dict, opts.sgd, "--sgd")
        grda = _read(read_state_dict, opts.grda, "--grda")
        if opts.config is not None and not Path(opts.config).is_file():
            raise ValueError(f"Invalid --config: {opts.config!r}; expected an existing YAML file")
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu") if opts.device == "auto" else None
        device = device or torch.device(opts.device)
        model, datamodule = from_config(opts.config)
        if opts.batches is not None and opts.batches < 1:
            raise ValueError(f"Invalid --batches: {opts.batches}; expected an int >= 1")
        batches = first_batches(datamodule.train_dataloader(), opts.batches)
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console, transient=True) as progress:
            result = diagnose(
                model.to(device),
                sgd,
                grda,
                batches,
                top_k=opts.top_k,
                hessian_batches=opts.hessian_batches,
                tol=opts.tol,
                curve_epochs=opts.curve_epochs,
                curve_lr=opts.curve_lr,
                curve_points=opts.curve_points,
                seed=opts.seed,
                progress=progress,
            )
    except ValueError as err:
        console.print(f"[red]lightning-grda diagnose: {err}[/red]", highlight=False)
        return 1
    out = Path(opts.output)
    out.mkdir(parents=True, exist_ok=True)
    result["files"] = {"sgd": str(opts.sgd), "grda": str(opts.grda), "config": opts.config, "device": str(device)}
    (out / "diagnostics.json").write_text(json.dumps(result, indent=2))
    print_report(result, console)
    written = [out / "diagnostics.json"]
    if not opts.no_plots:
        try:
            written += plot_all(result, out)
        except ImportError:
            console.print("No plots: matplotlib is missing (pip install matplotlib)", highlight=False)
    console.print("Wrote " + ", ".join(str(p) for p in written), highlight=False)
    return 0


def _read(read, path: str, arg: str) -> dict:
    try:
        return read(path)
    except ValueError as err:
        raise ValueError(f"{arg}: {err}") from err
