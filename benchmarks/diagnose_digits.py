"""The paper's directional claims on the embedded digits default: gRDA against its SGD baseline.

Run: ``python benchmarks/diagnose_digits.py [--out DIR] [--sgd A --grda B] [--top_k 10] [--hessian_batches N]``

Trains ``configs/digits.yaml`` (gRDA) and ``configs/digits_sgd.yaml`` (its SGD baseline: same model, seed, batch
order, epochs and schedule) through the real ``lightning-grda fit`` in this process, unless ``--sgd``/``--grda`` give
weight files already; saves both state dicts in ``DIR``; then runs ``lightning-grda diagnose`` on them (which writes
``DIR/diagnostics.json``, ``DIR/share.png`` and ``DIR/connectivity.png``) and prints the headline figures: the
share of ``w_gRDA - w_SGD`` on the Hessian's top 1, 9 and 10 eigenvectors (the paper: about 1e-3 on the top 10,
falling to 1e-5) and the maximum training loss along the trained Bezier curve and the straight line against the
endpoints'.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from lightning_grda.cli import CONFIG_DIR, main

QUIET = [
    "--trainer.enable_progress_bar=false",
    "--trainer.enable_model_summary=false",
    "--trainer.logger=false",
    "--trainer.enable_checkpointing=false",
    "--test_after_fit=false",
]


def train(config: str, path: Path, extra: list[str]) -> Path:
    cli = main(["fit", f"--config={CONFIG_DIR / config}", *QUIET, *extra])
    torch.save(cli.model.state_dict(), path)
    return path


def main_(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="diagnose_digits", help="folder for the weights, JSON and plots")
    parser.add_argument("--sgd", default=None, help="SGD weights to use instead of training them")
    parser.add_argument("--grda", default=None, help="gRDA weights to use instead of training them")
    parser.add_argument("--max-epochs", type=int, default=None, help="override both configs' max_epochs")
    parser.add_argument("--top_k", type=int, default=10)
    parser.add_argument("--hessian_batches", type=int, default=None, help="default: all training batches")
    parser.add_argument("--batches", type=int, default=None, help="training batches for everything (all)")
    parser.add_argument("--tol", type=float, default=1e-4, help="relative accuracy of the eigenvalues")
    parser.add_argument("--curve_epochs", type=int, default=5)
    parser.add_argument("--curve_points", type=int, default=11)
    args = parser.parse_args(argv)
    sys.argv = sys.argv[:1]  # the CLI runs below get their arguments explicitly
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    extra = [] if args.max_epochs is None else [f"--trainer.max_epochs={args.max_epochs}"]
    t0 = time.perf_counter()
    sgd = Path(args.sgd) if args.sgd else train("digits_sgd.yaml", out / "sgd.pt", extra)
    grda = Path(args.grda) if args.grda else train("digits.yaml", out / "grda.pt", extra)
    t1 = time.perf_counter()
    command = [
        "diagnose",
        f"--sgd={sgd}",
        f"--grda={grda}",
        f"--output={out}",
        f"--top_k={args.top_k}",
        f"--tol={args.tol}",
    ]
    command += [f"--curve_epochs={args.curve_epochs}", f"--curve_points={args.curve_points}", "--device=cpu"]
    for name in ("hessian_batches", "batches"):
        if getattr(args, name) is not None:
            command.append(f"--{name}={getattr(args, name)}")
    status = main(command)
    if status != 0:
        raise SystemExit(status)
    t2 = time.perf_counter()
    result = json.loads((out / "diagnostics.json").read_text())
    share = result["share"]["share"]
    s = result["summary"]
    print(f"lightning-grda {' '.join(command)}")
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; training {t1 - t0:.0f} s, "
        f"diagnostics {t2 - t1:.0f} s"
    )
    for k in (1, 9, 10):
        if k <= len(share):
            print(f"share of ||w_gRDA - w_SGD||^2 on the top {k}: {share[k - 1]:.2e}")
    print(f"eigenvalues: {', '.join(f'{v:.3g}' for v in result['hessian']['eigenvalues'])}")
    print(f"endpoint losses (SGD, gRDA): {s['endpoint_loss'][0]:.4f}, {s['endpoint_loss'][1]:.4f}")
    print(f"Bezier curve max loss: {s['curve_max_loss']:.4f} ({s['curve_max_over_endpoints']:.2f}x the worse endpoint)")
    print(f"straight line max loss: {s['line_max_loss']:.4f} ({s['line_max_over_endpoints']:.2f}x)")
    print(f"||w||_2/||w||_1: SGD {result['norm_ratio']['sgd']:.3e}, gRDA {result['norm_ratio']['grda']:.3e}")
    return result


if __name__ == "__main__":
    main_()
