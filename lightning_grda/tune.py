"""Choose gRDA's ``c`` by the paper's rule, as a resumable search: ``lightning-grda tune-c`` and :func:`search_c`.

Chao et al. (NeurIPS 2020, arXiv 2006.09358), section 5: fix ``mu``, then take the largest ``c`` whose test accuracy
after a few (1-5) epochs stays comparable to SGD's. Here "comparable" is "within ``tolerance`` accuracy points of the
same config with ``c = 0``" (which is SGD without momentum, exactly), measured on the validation split.

The search (:func:`search_c`) needs only a function ``c -> (val_acc, sparsity)``: a geometric bracket from ``start``
(up by ``factor`` while trials pass, down while they fail), then bisection on ``log c`` between the largest passing
``c`` and the smallest failing one, within ``max_trials``. Every next ``c`` is a function of the finished trials
alone, so a search rerun on the same ``trials.csv`` asks for the same values and redoes none. Monotonicity (a larger
``c`` never does better) is assumed but checked: a trial that passes above a failure is reported. A trial that
raises, or gives a non-finite accuracy or loss, counts as failed ("too large"), not as an abort.

:func:`fit_trial` runs one trial as a normal ``lightning-grda fit`` of a config for a few epochs, with any override
(``--trainer.devices 8``, ``--init_from ...``) passed through; :func:`tune_c` ties both together with the files a
search leaves: ``trials.csv`` (each trial written as it finishes), ``best.yaml`` (the config with the chosen ``c``)
and ``c_search.png`` (:func:`plot_search`).
"""

from __future__ import annotations

import csv
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from rich.table import Table

from lightning_grda.checks import check_int, check_real

__all__ = [
    "SearchResult",
    "Trial",
    "fit_trial",
    "plot_search",
    "read_trials",
    "search_c",
    "trials_table",
    "tune_c",
    "write_trial",
]

OK, FAILED = "ok", "failed"


@dataclass
class Trial:
    """One finished trial: ``c`` (0 is the SGD reference), its accuracy and sparsity, and how it went.

    Attributes:
        c: gRDA's ``c`` (0: SGD).
        mu: gRDA's ``mu``.
        epochs: the epochs trained.
        val_acc: the validation accuracy in [0, 1] (NaN if the trial failed).
        sparsity: the fraction of exact zeros over all parameters (NaN if the trial failed).
        seconds: the wall time of the trial.
        status: ``"ok"`` or ``"failed"`` (raised, or a non-finite accuracy or loss).
        note: why it failed.
    """

    c: float
    mu: float
    epochs: int
    val_acc: float
    sparsity: float
    seconds: float = 0.0
    status: str = OK
    note: str = ""

    @property
    def ok(self) -> bool:
        """The trial finished with a finite accuracy."""
        return self.status == OK and math.isfinite(self.val_acc)


@dataclass
class SearchResult:
    """What :func:`search_c` found.

    Attributes:
        reference: the ``c = 0`` (SGD) trial.
        trials: the ``c > 0`` trials, in the order they were run (or read back).
        best: the largest passing ``c`` below every failing one (None: no ``c`` passed).
        threshold: the accuracy a trial needs to pass: the reference's minus ``tolerance`` points.
        bracketed: a failing ``c`` above ``best`` was found (else ``best`` is only the largest tried).
        contradictions: passing trials above a failing one (against monotonicity), as ``(passing c, failing c)``.
    """

    reference: Trial
    trials: list[Trial]
    best: float | None
    threshold: float
    bracketed: bool
    contradictions: list[tuple[float, float]] = field(default_factory=list)

    def passed(self, trial: Trial) -> bool:
        """The trial's accuracy is within the tolerance of the reference's."""
        return trial.ok and trial.val_acc >= self.threshold


# --------------------------------------------------------------------------- the search, on finished trials only


def _judge(trials: Sequence[Trial], threshold: float) -> tuple[float | None, float | None]:
    """``(lo, hi)``: the largest passing ``c`` below the smallest failing one, and that failing ``c``."""
    fails = [t.c for t in trials if not (t.ok and t.val_acc >= threshold)]
    hi = min(fails) if fails else None
    passes = [t.c for t in trials if t.ok and t.val_acc >= threshold and (hi is None or t.c < hi)]
    return (max(passes) if passes else None), hi


def _next_c(trials: Sequence[Trial], threshold: float, start: float, factor: float, resolution: float) -> float | None:
    """The next ``c`` to try given the finished trials, or None when the bracket is as narrow as ``resolution``."""
    if not trials:
        return start
    lo, hi = _judge(trials, threshold)
    if hi is None:
        return max(t.c for t in trials) * factor
    if lo is None:
        return min(t.c for t in trials) / factor
    if hi / lo <= resolution:
        return None
    return math.sqrt(lo * hi)


def _same(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=0.0) or a == b


def search_c(
    trial: Callable[[float], Trial],
    *,
    tolerance: float = 1.0,
    max_trials: int = 8,
    start: float = 1e-4,
    factor: float = 10.0,
    resolution: float = 1.25,
    done: Sequence[Trial] = (),
    on_trial: Callable[[Trial, int, int], None] | None = None,
    before_trial: Callable[[float, int, int], None] | None = None,
) -> SearchResult:
    """Search the largest ``c`` whose accuracy stays within ``tolerance`` points of SGD's (``c = 0``).

    Args:
        trial: runs one trial of a given ``c`` and returns its :class:`Trial` (``c = 0`` is the reference). A trial
            that raises is recorded as failed ("too large") and the search goes on.
        tolerance: accuracy points (percent) a trial may lose against the reference and still pass, ``>= 0``.
        max_trials: the most ``c > 0`` trials, ``>= 1`` (the reference is run once besides, and trials read from
            ``done`` count too).
        start: the first ``c`` tried, ``> 0`` (the paper suggests starting from ``1e-4``).
        factor: the bracket's step, ``> 1``: up by it while trials pass, down while they fail.
        resolution: stop bisecting once the failing ``c`` is within this factor of the passing one, ``> 1``.
        done: trials already finished (e.g. :func:`read_trials`, the reference among them or not): the bracket
            starts from all of them, and none is run again.
        on_trial: called with each trial run here, its number and ``max_trials``, as soon as it finishes (to write
            it down).
        before_trial: called with the ``c`` about to run, its number and ``max_trials`` (to show progress).

    Returns:
        The :class:`SearchResult`.

    Raises:
        ValueError: an invalid argument (before any trial), or the reference trial failed.

    Example:
        >>> def fake(c):  # accuracy falls past c = 0.02
        ...     return Trial(c, 0.6, 1, val_acc=0.95 if c <= 0.02 else 0.5, sparsity=min(c * 40, 1))
        >>> result = search_c(fake, tolerance=1.0, max_trials=10)
        >>> [f"{t.c:.3g}" for t in result.trials]
        ['0.0001', '0.001', '0.01', '0.1', '0.0316', '0.0178', '0.0237', '0.0205']
        >>> f"{result.best:.3g}", result.bracketed
        ('0.0178', True)
    """
    tolerance = check_real("tolerance", tolerance, low=0.0)
    max_trials = check_int("max_trials", max_trials, low=1)
    start = check_real("start", start, low=0.0, low_open=True)
    factor = check_real("factor", factor, low=1.0, low_open=True)
    resolution = check_real("resolution", resolution, low=1.0, low_open=True)
    done = list(done)

    def run(c: float, number: int) -> Trial:
        for old in done:
            if _same(old.c, c):
                return old
        if before_trial is not None:
            before_trial(c, number, max_trials)
        t0 = time.perf_counter()
        try:
            result = trial(c)
        except Exception as err:  # a crashing trial is a failed trial: too large a c, most likely
            result = Trial(c, math.nan, 0, math.nan, math.nan, status=FAILED, note=f"{type(err).__name__}: {err}")
        result.seconds = result.seconds or time.perf_counter() - t0
        if result.status == OK and not math.isfinite(result.val_acc):
            result.status, result.note = FAILED, result.note or "non-finite accuracy"
        if on_trial is not None:
            on_trial(result, number, max_trials)
        return result

    reference = next((t for t in done if t.c == 0 and t.ok), None) or run(0.0, 0)
    if not reference.ok:
        raise ValueError(f"The reference trial (c = 0, SGD) failed: {reference.note or 'non-finite accuracy'}")
    threshold = reference.val_acc - tolerance / 100.0
    trials: list[Trial] = [t for t in done if t.c > 0]  # every finished trial informs the bracket
    while len(trials) < max_trials:
        c = _next_c(trials, threshold, start, factor, resolution)
        if c is None:
            break
        trials.append(run(c, len(trials) + 1))
    lo, hi = _judge(trials, threshold)
    fails = [t.c for t in trials if not (t.ok and t.val_acc >= threshold)]
    contradictions = sorted((t.c, f) for t in trials if t.ok and t.val_acc >= threshold for f in fails if f < t.c)
    return SearchResult(reference, trials, lo, threshold, hi is not None, contradictions)


# --------------------------------------------------------------------------- trials.csv


def write_trial(path: str | os.PathLike[str], trial: Trial) -> None:
    """Append ``trial`` to the CSV file at ``path`` (with a header if the file is new), flushed at once."""
    path = Path(path)
    new = not path.exists() or path.stat().st_size == 0
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[x.name for x in fields(Trial)])
        if new:
            writer.writeheader()
        row = asdict(trial)
        row["c"] = repr(float(trial.c))  # exact round trip, so a resumed search finds its c again
        writer.writerow(row)


def read_trials(path: str | os.PathLike[str], mu: float | None = None, epochs: int | None = None) -> list[Trial]:
    """The trials in the CSV file at ``path`` (none if it does not exist), only those of ``mu`` and ``epochs``."""
    path = Path(path)
    if not path.exists():
        return []
    out = []
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            try:
                trial = Trial(
                    c=float(row["c"]),
                    mu=float(row["mu"]),
                    epochs=int(row["epochs"]),
                    val_acc=float(row["val_acc"]),
                    sparsity=float(row["sparsity"]),
                    seconds=float(row["seconds"]),
                    status=row.get("status") or OK,
                    note=row.get("note") or "",
                )
            except (KeyError, TypeError, ValueError) as err:
                raise ValueError(f"Invalid trials file: {str(path)!r} has a bad row {row}: {err}") from err
            failed_reference = trial.c == 0 and not trial.ok  # rerun it: nothing can be judged without it
            same = (mu is None or _same(trial.mu, mu)) and (epochs is None or trial.epochs == epochs)
            if same and not failed_reference:
                out.append(trial)
    return out


# --------------------------------------------------------------------------- one trial: a normal fit


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


# --------------------------------------------------------------------------- reporting


def trials_table(result: SearchResult, tolerance: float) -> Table:
    """A rich table of the reference and the trials (by ``c``), each judged, the chosen ``c`` marked."""
    table = Table(
        title=f"c search: within {tolerance:g} points of SGD's accuracy ({100 * result.reference.val_acc:.2f} %)"
    )
    for name in ("c", "val acc", "vs SGD", "sparsity", "time", "verdict"):
        table.add_column(name, justify="left" if name == "verdict" else "right")
    contradicting = {p for p, _ in result.contradictions}
    for t in [result.reference, *sorted(result.trials, key=lambda t: t.c)]:
        if t.c == 0:
            verdict = "reference (SGD)"
        elif not t.ok:
            verdict = f"failed: {t.note}" if t.note else "failed"
        else:
            verdict = "pass" if result.passed(t) else "too large"
            if t.c in contradicting:
                verdict += " (contradicts monotonicity)"
        if result.best is not None and t.c > 0 and _same(t.c, result.best):
            verdict = "[bold]chosen[/bold]: " + verdict
        acc = f"{100 * t.val_acc:.2f} %" if t.ok else "-"
        delta = f"{100 * (t.val_acc - result.reference.val_acc):+.2f}" if t.ok and t.c > 0 else ""
        sparsity = f"{100 * t.sparsity:.1f} %" if t.ok else "-"
        table.add_row(f"{t.c:.4g}", acc, delta, sparsity, f"{t.seconds:.0f} s", verdict)
    return table


def plot_search(result: SearchResult, tolerance: float, path: str | os.PathLike[str]) -> Path:
    """Plot accuracy and sparsity against ``c`` (log axis), the SGD reference and the tolerance band, to a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = sorted((t for t in result.trials if t.ok), key=lambda t: t.c)
    failed = [t for t in result.trials if not t.ok]
    fig, (ax_acc, ax_sp) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    ref = 100 * result.reference.val_acc
    ax_acc.axhline(ref, color="black", linewidth=1, label=f"SGD (c = 0): {ref:.2f} %")
    band = f"pass: at least {ref - tolerance:.2f} % ({tolerance:g} points below SGD)"
    ax_acc.axhspan(ref - tolerance, ref, color="tab:green", alpha=0.15, label=band)
    ax_acc.plot([t.c for t in done], [100 * t.val_acc for t in done], "o-", color="tab:blue", label="trials")
    if failed:
        low = min([100 * t.val_acc for t in done] + [ref - tolerance]) - 1
        ax_acc.scatter([t.c for t in failed], [low] * len(failed), marker="x", color="tab:red", label="failed")
    if result.best is not None:
        for ax in (ax_acc, ax_sp):
            ax.axvline(result.best, color="tab:green", linestyle="--", linewidth=1)
        ax_acc.plot([], [], "--", color="tab:green", label=f"chosen c = {result.best:.3g}")
    ax_acc.set_ylabel("validation accuracy (%)")
    ax_acc.legend(fontsize=8, loc="lower left")
    ax_acc.grid(alpha=0.3)
    ax_sp.plot([t.c for t in done], [100 * t.sparsity for t in done], "s-", color="tab:orange")
    ax_sp.set_ylabel("sparsity (%)")
    ax_sp.set_xlabel("c (log scale)")
    ax_sp.set_xscale("log")
    ax_sp.grid(alpha=0.3)
    epochs = result.reference.epochs
    fig.suptitle(f"gRDA c search (mu = {result.reference.mu:g}, {epochs} epoch{'s' if epochs != 1 else ''} per trial)")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


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
