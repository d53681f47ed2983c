"""``lightning-grda tune-c``: choose gRDA's ``c`` by the paper's rule (the work is :mod:`lightning_grda.tune`).

Every argument it does not know is a ``fit`` override passed to each trial (``--trainer.devices 8``,
``--init_from sgd.ckpt``), so a config is searched on its own strategy.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console

from lightning_grda.checks import check_int, check_real
from lightning_grda.tune import Trial, trials_table, tune_c
from lightning_grda.tune.run import config_with_c

HELP = "choose gRDA's c: the largest whose accuracy after a few epochs stays within a tolerance of SGD's"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lightning-grda tune-c",
        description=(
            f"{HELP} (Chao et al. 2020). A geometric bracket from --start, then bisection on log c; each trial is a "
            "`lightning-grda fit` of the config for --epochs epochs, written to OUTPUT/trials.csv as it finishes "
            "(a rerun resumes from it). Any other argument is a fit override passed to every trial."
        ),
    )
    parser.add_argument("--config", default=None, help="the config to search (default: the embedded digits.yaml)")
    parser.add_argument("--mu", type=float, default=None, help="gRDA's mu, fixed (default: the config's)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per trial (default 3; the paper: 1-5)")
    parser.add_argument(
        "--tolerance", type=float, default=1.0, help="accuracy points below SGD's that still pass (default 1.0)"
    )
    parser.add_argument("--max_trials", type=int, default=8, help="the most c > 0 trials (default 8; SGD besides)")
    parser.add_argument("--start", type=float, default=1e-4, help="the first c tried (default 1e-4, the paper's)")
    parser.add_argument("--output", default="tune_c", help="folder of trials.csv, best.yaml, c_search.png")
    return parser


def main(args: list[str]) -> int:
    """Run the search; return 0 when a ``c`` was chosen, 1 when none passed."""
    # LightningCLI warns when it is given arguments while sys.argv holds others (this command's): each trial is
    # given its own, so hide ours from it while the search runs.
    argv, sys.argv = sys.argv, sys.argv[:1]
    try:
        return _main(args)
    finally:
        sys.argv = argv


def _main(args: list[str]) -> int:
    from lightning_grda.cli import main as cli_main

    console = Console()
    known, overrides = _parser().parse_known_args(args)
    # every argument is checked before any trial
    tolerance = check_real("tolerance", known.tolerance, low=0.0)
    max_trials = check_int("max_trials", known.max_trials, low=1)
    epochs = check_int("epochs", known.epochs, low=1)
    start = check_real("start", known.start, low=0.0, low_open=True)
    if known.mu is not None:
        check_real("mu", known.mu, low=0.0, low_open=True)
    base = [f"--config={known.config}"] if known.config else []
    parsed = cli_main([*base, *overrides], run=False)  # the config and overrides parse and instantiate
    config = parsed.config
    if config.get("optimizer") is not None:
        raise ValueError(
            f"Invalid config: {known.config!r} replaces the model's GRDA with optimizer "
            f"{config['optimizer'].class_path}; tune-c searches the model's c (drop `optimizer`)"
        )
    model_args = config["model"].get("init_args") or {}
    if "c" not in model_args or "mu" not in model_args:
        raise ValueError(
            f"Invalid config: {known.config!r}: its model ({config['model'].class_path}) takes no `c` and `mu`; "
            "tune-c searches the c of a model with GRDAMixin's arguments (e.g. lightning_grda.models.ImageClassifier)"
        )
    mu = check_real("mu", known.mu if known.mu is not None else model_args["mu"], low=0.0, low_open=True)
    output = Path(known.output)

    def before(c: float, number: int, total: int) -> None:
        what = "the SGD reference (c = 0)" if number == 0 else f"trial {number} (at most {total - number} more after)"
        console.rule(f"tune-c: {what}: c = {c:.4g}, mu = {mu:g}, {epochs} epoch{'s' if epochs != 1 else ''}")

    def after(t: Trial, number: int, total: int) -> None:
        acc = f"val_acc {100 * t.val_acc:.2f} %, sparsity {100 * t.sparsity:.1f} %" if t.ok else f"failed: {t.note}"
        console.print(f"tune-c: c = {t.c:.4g}: {acc}, {t.seconds:.0f} s (written to {output / 'trials.csv'})")

    result = tune_c(
        known.config,
        output,
        mu=mu,
        epochs=epochs,
        tolerance=tolerance,
        max_trials=max_trials,
        start=start,
        overrides=overrides,
        before_trial=before,
        on_trial=after,
    )
    console.print(trials_table(result, tolerance))
    for passing, failing in result.contradictions:
        console.print(f"[yellow]not monotone: c = {passing:.4g} passes although c = {failing:.4g} failed[/yellow]")
    if result.best is None:
        console.print(
            f"No c >= {min(t.c for t in result.trials):.3g} passed: try a smaller --start or a larger --tolerance"
        )
        return 1
    if not result.bracketed:
        console.print("[yellow]every c tried passed: the largest is chosen, a larger one may pass too[/yellow]")
    best = output / "best.yaml"
    best.write_text(config_with_c(parsed.parser, [*base, *overrides], result.best))
    console.print(f"chosen c = {result.best:.4g} (mu = {mu:g}); plot: {output / 'c_search.png'}")
    console.print(f"train with it: lightning-grda fit --config {best}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
