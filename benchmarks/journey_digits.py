"""The user's journey on the embedded digits data, measured: train SGD, fine-tune gRDA from it, gRDA from scratch.

Run: ``python benchmarks/journey_digits.py [--workdir journey] [--tune] [--max-epochs N] [--only STEP ...]``

Every step is the real ``lightning-grda`` command, run in this process inside ``--workdir``:

1. ``fit --config configs/digits_sgd.yaml``: the SGD baseline, which keeps ``trained/digits_sgd.ckpt``;
2. ``fit --init_from trained/digits_sgd.ckpt``: the default gRDA job (``digits.yaml``), starting from SGD's weights;
3. ``fit``: the same gRDA job from a random initialisation;
4. with ``--tune``: ``tune-c --epochs 3`` on ``digits.yaml`` (the paper's rule, c searched from 1e-4), then the full
   30-epoch ``fit --config <workdir>/tune_c/best.yaml`` with the chosen c.

It prints a table (run, sparsity, test accuracy, wall time) and writes it to ``<workdir>/journey.md``. ``--only``
runs some steps (``finetune`` after an earlier ``sgd`` in the same workdir), e.g. ``--only tune`` beside the rest.
On a loaded machine set ``OMP_NUM_THREADS=1``: oversubscribed torch threads are much slower than one.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from lightning_grda.cli import CONFIG_DIR, main

QUIET = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false", "--trainer.logger=false"]


def fit(label: str, args: list[str], results: list[tuple[str, dict[str, float]]]) -> dict[str, float]:
    t0 = time.perf_counter()
    cli = main(["fit", *args, *QUIET])
    metrics = cli.trainer.callback_metrics
    result = {
        "sparsity": float(metrics["sparsity"]),
        "test_acc": float(metrics["test_acc"]),
        "seconds": time.perf_counter() - t0,
    }
    results.append((label, result))
    print(f"RESULT {label}: {result}", flush=True)
    return result


def main_(argv: list[str] | None = None) -> list[tuple[str, dict[str, float]]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="journey", help="where trained/, tune_c/ and journey.md go")
    parser.add_argument("--tune", action="store_true", help="also run tune-c and the full fit with its choice")
    parser.add_argument("--max-epochs", type=int, default=None, help="override every fit's max_epochs (smoke runs)")
    parser.add_argument("--tune-epochs", type=int, default=3, help="tune-c --epochs")
    parser.add_argument("--tune-max-trials", type=int, default=8, help="tune-c --max_trials")
    parser.add_argument("--finetune-epochs", type=int, default=None, help="max_epochs of the run from SGD's weights")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=["sgd", "finetune", "scratch", "tune"],
        default=None,
        help="run only these steps (finetune needs <workdir>/trained/digits_sgd.ckpt from an earlier sgd step)",
    )
    parser.add_argument("--limit-train-batches", type=float, default=None, help="for a quick smoke run")
    args = parser.parse_args(argv)
    sys.argv = sys.argv[:1]  # the CLI runs below get their arguments explicitly, not this script's
    extra = [] if args.max_epochs is None else [f"--trainer.max_epochs={args.max_epochs}"]
    if args.limit_train_batches is not None:
        extra.append(f"--trainer.limit_train_batches={args.limit_train_batches}")
    workdir = Path(args.workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    os.chdir(workdir)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, working in {workdir}", flush=True)

    steps = set(args.only or ["sgd", "finetune", "scratch", *(["tune"] if args.tune else [])])
    results: list[tuple[str, dict[str, float]]] = []
    if "sgd" in steps:
        fit("SGD (digits_sgd.yaml)", [f"--config={CONFIG_DIR / 'digits_sgd.yaml'}", *extra], results)
    ckpt = workdir / "trained" / "digits_sgd.ckpt"
    if "finetune" in steps:
        epochs = [] if args.finetune_epochs is None else [f"--trainer.max_epochs={args.finetune_epochs}"]
        label = "gRDA c 0.06, from SGD's weights (--init_from)"
        if args.finetune_epochs is not None:
            label += f", {args.finetune_epochs} epochs"
        fit(label, [f"--init_from={ckpt}", *extra, *epochs], results)
    if "scratch" in steps:
        fit("gRDA c 0.06, from scratch", list(extra), results)
    if "tune" in steps:
        t0 = time.perf_counter()
        limit = extra[1:] if args.max_epochs is not None else extra  # tune-c sets the epochs itself
        tune = ["tune-c", f"--epochs={args.tune_epochs}", f"--max_trials={args.tune_max_trials}", "--output=tune_c"]
        status = main([*tune, *QUIET[:1], *limit])
        print(f"RESULT tune-c: exit {status}, {time.perf_counter() - t0:.0f} s", flush=True)
        if status == 0:
            best = workdir / "tune_c" / "best.yaml"
            c = next(line.split(":")[1].strip() for line in best.read_text().splitlines() if line.strip()[:2] == "c:")
            fit(f"gRDA c {float(c):.3g} (tune-c's choice), from scratch", [f"--config={best}", *extra], results)

    table = Table(title=f"The journey on digits (torch {torch.__version__}, {torch.get_num_threads()} threads)")
    for column in ("run", "sparsity", "test accuracy", "wall time"):
        table.add_column(column, justify="left" if column == "run" else "right")
    md = ["| run | sparsity | test accuracy | wall time |", "|---|---|---|---|"]
    for label, r in results:
        row = (label, f"{r['sparsity']:.1%}", f"{r['test_acc']:.2%}", f"{r['seconds']:.0f} s")
        table.add_row(*row)
        md.append("| " + " | ".join(row) + " |")
    Console().print(table)
    (workdir / "journey.md").write_text("\n".join(md) + "\n")
    return results


if __name__ == "__main__":
    main_()
