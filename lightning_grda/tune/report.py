"""What a :mod:`lightning_grda.tune` search shows: a rich table of the trials and a plot against ``c``."""

from __future__ import annotations

import os
from pathlib import Path

from rich.table import Table

from lightning_grda.tune.search import SearchResult, same_c

__all__ = ["plot_search", "trials_table"]


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
        if result.best is not None and t.c > 0 and same_c(t.c, result.best):
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
