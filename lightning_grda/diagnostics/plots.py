"""PNG plots of :func:`lightning_grda.diagnostics.diagnose`'s result, with matplotlib (headless: the Agg backend)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lightning_grda.diagnostics.report import PAPER_TOP10_SHARE

__all__ = ["plot_all", "plot_paths", "plot_share"]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save(plt: Any, fig: Any, path: str | os.PathLike[str]) -> Path:
    """Lay ``fig`` out, write it to ``path`` as a PNG and close it."""
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def plot_share(result: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Share of ``w_gRDA - w_SGD`` on the top-k eigenvectors against k, on a log axis, with the paper's band."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.semilogy(result["share"]["k"], result["share"]["share"], "o-", label="this run")
    ax.axhspan(*PAPER_TOP10_SHARE, color="grey", alpha=0.2, label="paper, top 10")
    ax.set_xlabel("k (top eigenvectors of the Hessian at w_SGD)")
    ax.set_ylabel("||P_k d||² / ||d||²")
    ax.set_title("Share of d = w_gRDA − w_SGD")
    ax.legend()
    return _save(plt, fig, path)


def plot_paths(result: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Training loss along the Bezier curve and the straight line, t = 0 (SGD) to 1 (gRDA)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(result["curve"]["t"], result["curve"]["loss"], "o-", label="Bézier curve (trained)")
    ax.plot(result["line"]["t"], result["line"]["loss"], "s--", label="straight line")
    ax.set_xlabel("t (0: SGD, 1: gRDA)")
    ax.set_ylabel("training loss")
    ax.set_title("Mode connectivity")
    ax.legend()
    return _save(plt, fig, path)


def plot_all(result: dict[str, Any], directory: str | os.PathLike[str]) -> list[Path]:
    """Both plots in ``directory``: ``share.png`` and ``connectivity.png``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    return [plot_share(result, directory / "share.png"), plot_paths(result, directory / "connectivity.png")]
