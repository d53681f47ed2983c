"""The search of :mod:`lightning_grda.tune` on finished trials alone: :class:`Trial`, :func:`search_c`.

A geometric bracket from ``start``, then bisection on ``log c`` between the largest passing ``c`` and the smallest
failing one; every next ``c`` is a function of the finished trials alone, so a rerun on the same trials redoes none.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from lightning_grda.checks import check_int, check_real

__all__ = ["FAILED", "OK", "SearchResult", "Trial", "same_c", "search_c"]

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


def same_c(a: float, b: float) -> bool:
    """``a`` and ``b`` are the same ``c`` (up to a relative ``1e-9``, as read back from ``trials.csv``)."""
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
            if same_c(old.c, c):
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
