"""One :mod:`lightning_grda.tune` trial as a normal ``lightning-grda fit``, and the whole search with its files.

:func:`fit_trial` runs one trial; :func:`tune_c` runs :func:`~lightning_grda.tune.search.search_c` on it, writing
``trials.csv`` and ``c_search.png``; :func:`config_with_c` makes ``best.yaml``'s text.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lightning_grda.checks import check_int, check_real
from lightning_grda.tune.report import plot_search
from lightning_grda.tune.search import FAILED, OK, SearchResult, Trial, search_c
from lightning_grda.tune.trials_file import read_trials, write_trial

__all__ = ["TRIAL_DEFAULTS", "config_with_c", "fit_trial", "tune_c"]

TRIAL_DEFAULTS = [
    "--trainer.logger=false",
    "--trainer.enable_model_summary=false",
]
"""Arguments every trial starts with; the user's overrides come after them (and win)."""


def fit_trial(
    config: str | os.PathLike[str] | None,
    c: float,
    mu: float,
    epochs: int,
    overrides: Sequence[str] = (),
    root: str | os.PathLike[str] | None = None,
) -> Trial:
    """Run ``lightning-grda fit`` of ``config`` with ``c`` and ``mu`` for ``epochs`` epochs; measure it.

    Args:
        config: the config file (None: the embedded default, digits).
        c: gRDA's ``c`` (``--model.init_args.c``).
        mu: gRDA's ``mu`` (``--model.init_args.mu``).
        epochs: ``--trainer.max_epochs``.
        overrides: any other ``fit`` arguments, e.g. ``["--trainer.devices=8", "--init_from=sgd.ckpt"]``.
        root: ``--trainer.default_root_dir`` of the trial (its checkpoints), if given.

    Returns:
        The :class:`Trial`: the validation accuracy and the sparsity at the end (``"failed"`` if either, or the last
        training loss, is not finite).
    """
    from lightning_grda.cli import main
    from lightning_grda.sparsity import global_sparsity

    args = ["fit", *([f"--config={config}"] if config is not None else []), *TRIAL_DEFAULTS]
    if root is not None:
        args.append(f"--trainer.default_root_dir={root}")
    args += [*overrides, f"--model.init_args.c={c!r}", f"--model.init_args.mu={mu!r}"]
    args += [f"--trainer.max_epochs={epochs}", "--test_after_fit=false"]
    t0 = time.perf_counter()
    cli = main(args)
    seconds = time.perf_counter() - t0
    metrics = cli.trainer.callback_metrics
    if "val_acc" not in metrics:
        raise ValueError("the fit logged no 'val_acc': tune-c needs a model that logs its validation accuracy")
    val_acc = float(metrics["val_acc"])
    sparsity = float(metrics["sparsity"]) if "sparsity" in metrics else global_sparsity(cli.model)
    losses = [float(metrics[k]) for k in ("train_loss", "val_loss") if k in metrics]
    finite = math.isfinite(val_acc) and all(math.isfinite(x) for x in losses)
    status, note = (OK, "") if finite else (FAILED, "non-finite loss or accuracy")
    return Trial(c, mu, epochs, val_acc, sparsity, seconds, status, note)


def tune_c(
    config: str | os.PathLike[str] | None,
    output: str | os.PathLike[str],
    *,
    mu: float,
    epochs: int = 3,
    tolerance: float = 1.0,
    max_trials: int = 8,
    start: float = 1e-4,
    overrides: Sequence[str] = (),
    trial: Callable[[float], Trial] | None = None,
    before_trial: Callable[[float, int, int], None] | None = None,
    on_trial: Callable[[Trial, int, int], None] | None = None,
) -> SearchResult:
    """The search of ``lightning-grda tune-c``: :func:`fit_trial` runs, each written to ``output/trials.csv`` at once.

    Resumes from ``output/trials.csv``: finished trials of the same ``mu`` and ``epochs`` are not run again. At the
    end it plots ``output/c_search.png`` (:func:`plot_search`); ``best.yaml`` is the command's (it needs the parser).

    Args:
        config: the config file (None: the embedded default).
        output: the folder of ``trials.csv``.
        mu: gRDA's ``mu``, fixed during the search.
        epochs: epochs per trial.
        tolerance: accuracy points below SGD's that still pass.
        max_trials: the most ``c > 0`` trials.
        start: the first ``c``.
        overrides: ``fit`` arguments passed to every trial.
        trial: the trial function (default: :func:`fit_trial` of ``config`` with the overrides).
        before_trial: see :func:`search_c`.
        on_trial: see :func:`search_c` (called after the trial is written).

    Returns:
        The :class:`SearchResult`.
    """
    mu = check_real("mu", mu, low=0.0, low_open=True)
    epochs = check_int("epochs", epochs, low=1)
    output = Path(output)
    csv_path = output / "trials.csv"
    done = read_trials(csv_path, mu=mu, epochs=epochs)

    def run(c: float) -> Trial:
        root = output / "runs" / f"c={c:.6g}"
        return fit_trial(config, c, mu, epochs, overrides, root=root)

    def record(t: Trial, number: int, total: int) -> None:
        t.mu, t.epochs = mu, epochs
        if _is_rank_zero():
            write_trial(csv_path, t)
        if on_trial is not None:
            on_trial(t, number, total)

    result = search_c(
        trial or run,
        tolerance=tolerance,
        max_trials=max_trials,
        start=start,
        done=done,
        on_trial=record,
        before_trial=before_trial,
    )
    if _is_rank_zero():
        plot_search(result, tolerance, output / "c_search.png")
    return result


def _is_rank_zero() -> bool:
    from lightning.pytorch.utilities import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) == 0


def config_with_c(parser: Any, args: Sequence[str], c: float) -> str:
    """The full config of ``args`` (``--config`` and overrides) with ``c`` set, as YAML for ``fit --config``."""
    cfg = parser.parse_args([*args, f"--model.init_args.c={c!r}"])
    return parser.dump(cfg, skip_none=False)
