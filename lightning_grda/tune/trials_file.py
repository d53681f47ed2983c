"""``trials.csv``: each finished trial of a :mod:`lightning_grda.tune` search, written as it finishes and read back."""

from __future__ import annotations

import csv
import os
from dataclasses import asdict, fields
from pathlib import Path

from lightning_grda.tune.search import OK, Trial, same_c

__all__ = ["read_trials", "write_trial"]


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
            same = (mu is None or same_c(trial.mu, mu)) and (epochs is None or trial.epochs == epochs)
            if same and not failed_reference:
                out.append(trial)
    return out
