"""The rich summary of :func:`lightning_grda.diagnostics.diagnose`'s result, beside the paper's figures."""

from __future__ import annotations

from typing import Any

from rich.console import Console, Group
from rich.table import Table

__all__ = ["print_report", "report"]

PAPER_TOP10_SHARE = (1e-5, 1e-3)
"""Chao et al. (NeurIPS 2020, fig. 4): about 1e-3 of ``||w_gRDA - w_SGD||^2`` on the top 10, falling to 1e-5."""


def report(result: dict[str, Any]) -> Group:
    """Two tables: the Hessian share and norms; losses along the Bezier curve and the straight line."""
    share = result["share"]
    top = Table(title="w_gRDA - w_SGD on the Hessian's top eigenvectors (at w_SGD)")
    top.add_column("k", justify="right")
    top.add_column("eigenvalue", justify="right")
    top.add_column("share ||P_k d||^2/||d||^2", justify="right")
    for k, value, s in zip(share["k"], result["hessian"]["eigenvalues"], share["share"]):
        top.add_row(str(k), f"{value:.4g}", f"{s:.3e}")
    top.caption = (
        f"paper: about {PAPER_TOP10_SHARE[1]:.0e} on the top 10, falling to {PAPER_TOP10_SHARE[0]:.0e}; "
        f"||d||_2 = {result['delta_norm']:.4g}; ||w||_2/||w||_1: SGD {result['norm_ratio']['sgd']:.3e}, "
        f"gRDA {result['norm_ratio']['grda']:.3e}"
    )
    path = Table(title="Training loss (accuracy) from w_SGD (t=0) to w_gRDA (t=1)")
    path.add_column("t", justify="right")
    path.add_column("Bezier curve", justify="right")
    path.add_column("straight line", justify="right")
    for i, t in enumerate(result["curve"]["t"]):
        path.add_row(f"{t:.2f}", _cell(result["curve"], i), _cell(result["line"], i))
    s = result["summary"]
    path.caption = (
        f"max loss: curve {s['curve_max_loss']:.4g} ({s['curve_max_over_endpoints']:.2f}x the worse endpoint), "
        f"line {s['line_max_loss']:.4g} ({s['line_max_over_endpoints']:.2f}x)"
    )
    return Group(top, path)


def print_report(result: dict[str, Any], console: Console | None = None) -> None:
    """Print :func:`report` on ``console`` (default: rich's)."""
    (console or Console()).print(report(result))


def _cell(path: dict[str, Any], i: int) -> str:
    acc = path.get("accuracy")
    return f"{path['loss'][i]:.4f}" + (f" ({100 * acc[i]:.1f} %)" if acc else "")
