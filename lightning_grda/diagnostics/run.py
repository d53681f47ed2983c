"""All the diagnostics of one SGD/gRDA pair, as one JSON-ready dict: what ``lightning-grda diagnose`` writes.

:func:`diagnose` takes a module, the two weight sets and the training batches; :func:`from_config` builds the module
and datamodule from a ``lightning-grda`` config, so a notebook can run exactly what the command runs.
"""

from __future__ import annotations

import copy
import itertools
import os
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from typing import Any

import torch
from torch import Tensor, nn

from lightning_grda.checks import check_int, check_real
from lightning_grda.diagnostics._loss import check_state_dict, flat_params, param_names
from lightning_grda.diagnostics.connectivity import bezier_point, evaluate_path, line_point, train_bezier
from lightning_grda.diagnostics.hessian import hessian_eigenpairs
from lightning_grda.diagnostics.norms import norm_ratio
from lightning_grda.diagnostics.projection import top_eigenspace_share

__all__ = ["diagnose", "first_batches", "from_config"]


def from_config(config: str | os.PathLike[str] | None, overrides: Sequence[str] = ()) -> tuple[nn.Module, Any]:
    """The model and datamodule of a ``lightning-grda`` config (the embedded default under it), set up for ``fit``.

    Args:
        config: a YAML config file (``None``: the embedded default, ``configs/digits.yaml``).
        overrides: further command-line options, e.g. ``["--data.init_args.batch_size=128"]``.
    """
    from lightning.pytorch import seed_everything

    from lightning_grda.cli import main

    args = ([f"--config={config}"] if config is not None else []) + list(overrides)
    cli = main(args, run=False)
    seed_everything(int(cli.config.get("seed_everything") or 0), verbose=False)
    cli.datamodule.prepare_data()
    cli.datamodule.setup("fit")
    return cli.model, cli.datamodule


def diagnose(
    module: nn.Module,
    sgd: Mapping[str, Tensor],
    grda: Mapping[str, Tensor],
    batches: Sequence[Any],
    *,
    top_k: int = 10,
    hessian_batches: int | None = None,
    tol: float = 1e-4,
    curve_epochs: int = 5,
    curve_lr: float = 0.05,
    curve_points: int = 11,
    seed: int = 0,
    progress: Any = None,
) -> dict[str, Any]:
    """Hessian top-k share of ``w_gRDA - w_SGD``, Bezier and straight-line connectivity, and norm ratios.

    Args:
        module: the LightningModule both weight sets belong to (its ``training_step`` returns the loss); it is not
            changed. Move it to a GPU first to run there.
        sgd: the SGD minimum (a state dict, e.g. from :func:`lightning_grda.weights.read_state_dict`); the Hessian is
            taken here, as in the paper.
        grda: the gRDA minimum, of the same model.
        batches: the training batches (a fixed list: the loss every part measures is their average).
        top_k: the number of Hessian eigenpairs, ``K``; shares are reported for ``k = 1..K``.
        hessian_batches: the Hessian uses the first this many batches (default: all).
        tol: the relative accuracy of the eigenvalues (ARPACK's ``tol``).
        curve_epochs: passes over ``batches`` to train the Bezier control point.
        curve_lr: its SGD learning rate (momentum 0.9).
        curve_points: evenly spaced ``t`` at which the curve and the line are evaluated.
        seed: seed of the Lanczos start and the ``t`` draws.
        progress: a :class:`rich.progress.Progress` to show the long parts on, or None.

    Returns:
        A JSON-ready dict: ``hessian`` (``eigenvalues``, ``products``, ``batches``, ``parameters``), ``share``
        (``k``, ``share``: ``||P_k delta||^2 / ||delta||^2``), ``delta_norm``, ``norm_ratio`` (``sgd``, ``grda``:
        ``||w||_2 / ||w||_1``), ``curve`` and ``line`` (``t``, ``loss``, ``accuracy``), and ``summary`` (maximum
        losses of the curve and the line against the endpoints').

    Raises:
        ValueError: weight sets that do not fit the module or are identical, ``top_k`` not below the parameter
            count, or a ``training_step`` that returns no loss.
    """
    check_state_dict(module, sgd, "sgd")
    check_state_dict(module, grda, "grda")
    names = param_names(module)
    n_params = sum(p.numel() for p in module.parameters() if p.requires_grad)
    check_int("top_k", top_k, low=1, high=n_params - 1)
    check_int("curve_epochs", curve_epochs, low=0)
    check_real("curve_lr", curve_lr, low=0.0, low_open=True)
    check_int("curve_points", curve_points, low=2)
    batches = list(batches)
    if not batches:
        raise ValueError("Invalid batches: []; expected at least one training batch")
    check_real("tol", tol, low=0.0, low_open=True)
    if hessian_batches is not None:
        check_int("hessian_batches", hessian_batches, low=1)

    def task(description: str, total: int) -> Any:
        if progress is None:
            return nullcontext(None)
        return _Task(progress, description, total)

    at_sgd = _with_state(module, sgd)
    hess_batches = batches[:hessian_batches] if hessian_batches else batches
    with task(f"Hessian top-{top_k} (Lanczos)", max(300, 20 * top_k)) as t:
        eig = hessian_eigenpairs(at_sgd, hess_batches, top_k, tol=tol, seed=seed, progress=t)
    delta = flat_params(grda, names) - flat_params(sgd, names)
    share = top_eigenspace_share(delta, eig.eigenvectors.to(delta.device))

    with task("Bezier curve: training", curve_epochs * len(batches)) as t:
        theta = train_bezier(module, sgd, grda, batches, epochs=curve_epochs, lr=curve_lr, seed=seed, progress=t)
    w0 = {k: sgd[k].float() for k in names}
    w1 = {k: grda[k].float() for k in names}
    base = _with_state(module, sgd)
    with task("Bezier curve: evaluating", curve_points) as t:
        curve = evaluate_path(base, lambda s: bezier_point(w0, theta, w1, s), batches, points=curve_points, progress=t)
    with task("Straight line: evaluating", curve_points) as t:
        line = evaluate_path(base, lambda s: line_point(w0, w1, s, names), batches, points=curve_points, progress=t)

    ends = (curve.loss[0], curve.loss[-1])
    return {
        "hessian": {
            "at": "sgd",
            "eigenvalues": eig.eigenvalues.tolist(),
            "products": eig.products,
            "batches": len(hess_batches),
            "parameters": n_params,
        },
        "share": {"k": list(range(1, top_k + 1)), "share": share.tolist()},
        "delta_norm": float(delta.double().norm()),
        "norm_ratio": {"sgd": norm_ratio(sgd, names), "grda": norm_ratio(grda, names)},
        "curve": {"t": curve.t, "loss": curve.loss, "accuracy": curve.accuracy},
        "line": {"t": line.t, "loss": line.loss, "accuracy": line.accuracy},
        "summary": {
            "endpoint_loss": list(ends),
            "curve_max_loss": max(curve.loss),
            "line_max_loss": max(line.loss),
            "curve_max_over_endpoints": max(curve.loss) / max(ends) if max(ends) > 0 else float("inf"),
            "line_max_over_endpoints": max(line.loss) / max(ends) if max(ends) > 0 else float("inf"),
        },
        "settings": {
            "top_k": top_k,
            "tol": tol,
            "curve_epochs": curve_epochs,
            "curve_lr": curve_lr,
            "curve_points": curve_points,
            "batches": len(batches),
            "seed": seed,
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
        },
    }


def _with_state(module: nn.Module, state: Mapping[str, Tensor]) -> nn.Module:
    """A copy of ``module`` holding ``state`` (parameters and buffers)."""
    work = copy.deepcopy(module)
    work.load_state_dict(dict(state), strict=True)
    return work


class _Task:
    """A rich progress task as a ``progress(done)`` callable, removed at the end."""

    def __init__(self, progress: Any, description: str, total: int) -> None:
        self.progress, self.description, self.total = progress, description, total

    def __enter__(self) -> _Task:
        self.id = self.progress.add_task(self.description, total=self.total)
        return self

    def __call__(self, done: int) -> None:
        if done > self.total:  # Lanczos may need more products than guessed
            self.total = done
        self.progress.update(self.id, completed=done, total=self.total)

    def __exit__(self, *exc: Any) -> None:
        self.progress.update(self.id, completed=self.total)


def first_batches(loader: Any, limit: int | None = None) -> list[Any]:
    """The first ``limit`` batches of ``loader`` (all by default), as a fixed list."""
    return list(itertools.islice(iter(loader), limit))
