"""gRDA: generalized regularized dual averaging, an optimizer that prunes while it trains.

Paper: Shih-Kang Chao, Zhanyu Wang, Yue Xing, Guang Cheng. *Directional Pruning of Deep Neural Networks*.
NeurIPS 2020. arXiv:2006.09358.

Written from the paper's update rule (see ``shared/DESIGN.md``, "The algorithm, exactly"); no code was taken from
the authors' repositories.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from lightning_grda.checks import check_choice, check_real, invalid
from lightning_grda.optim.functional import grda, threshold_increment
from lightning_grda.optim.nonfinite import NONFINITE_POLICIES, NonFinitePolicy, all_finite

__all__ = ["GRDA", "grda", "threshold_increment"]


def _dual_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the dual average is kept in: float64 for float64 parameters, float32 for every other precision."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _same_kind(a: Tensor, b: Tensor) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and a.device == b.device and a.stride() == b.stride()


class GRDA(Optimizer):
    r"""Generalized regularized dual averaging (gRDA), an l1-proximal optimizer that prunes while it trains.

    For each parameter :math:`w` with value :math:`w_0` at its first step, learning rate :math:`\gamma_n`
    (the group's ``lr`` at step :math:`n`) and hyperparameters :math:`c \ge 0`, :math:`\mu > 0`:

    .. math::
        \begin{aligned}
            a_0 &= w_0, \qquad T_0 = 0, \\
            a_n &= a_{n-1} - \gamma_n \nabla L_n(w_{n-1})
                && \text{(dual average: it never forgets)} \\
            T_n &= T_{n-1} + c\,\gamma_n^{\mu + 1/2}\,\bigl(n^{\mu} - (n-1)^{\mu}\bigr)
                && \text{(soft threshold)} \\
            w_n &= \operatorname{sign}(a_n)\,\max\bigl(|a_n| - T_n,\, 0\bigr)
                = \operatorname{softshrink}(a_n, T_n).
        \end{aligned}

    At a constant learning rate :math:`\gamma` the threshold is the paper's closed form
    :math:`T_n = c \sqrt{\gamma}\,(n\gamma)^{\mu}`. Weights whose dual average stays within :math:`T_n` of zero are
    exactly zero: the network becomes sparse while it trains, with no mask, no target sparsity and no retraining.
    ``c = 0`` is plain SGD without momentum, bit for bit.

    .. note::
        When the learning rate changes (the paper's one-time drop), :math:`T_n` keeps accumulating with the new
        rate: it never jumps, it grows more slowly. This is what the authors' PyTorch code does and what their
        ImageNet results were obtained with; their Keras code instead recomputes the closed form with the current
        rate, which this class does not follow.

    Precision: the dual average is kept in float32 for float32, bfloat16 and float16 parameters (float64 for float64
    ones), so small ``lr * grad`` steps never round away, while the parameters keep their own dtype, device, storage
    and memory format: they are updated in place. The step count and the threshold are 0-dim float64 tensors on the
    host, like ``torch.optim.Adam``'s step, so reading them never synchronises with an accelerator.
    ``load_state_dict`` keeps the dual average in its own precision (``torch.optim.Optimizer`` would cast it to the
    parameter's dtype) and the step and threshold on the host.

    Non-finite gradients: the dual average never forgets, so a single NaN would make a weight NaN for the rest of
    training. Before any state changes, one check over all gradients (a single host synchronisation per step,
    never one per parameter) applies the ``nonfinite`` policy: ``"raise"`` (default) raises a ``FloatingPointError``
    naming the offending parameters and changes nothing; ``"skip"`` skips the whole step with a warning, leaving
    weights, dual averages, step counts and thresholds as they were (the count of skipped steps is in
    :attr:`skipped_steps`); ``"ignore"`` does no check, for when something else already does (a
    ``torch.amp.GradScaler`` skips non-finite steps before the optimizer sees them).
    Under DDP every rank sees the same averaged gradients, and under FSDP2 the check over ``DTensor`` gradients
    reduces across ranks, so all ranks decide alike (tested). FSDP1's flat 1-D pieces are plain tensors: each rank
    would check only its own, so there a NaN on one rank would make that rank alone raise or skip.

    Args:
        params: the parameters to optimise, or dicts defining parameter groups; each group may set its own
            ``lr``, ``c`` and ``mu`` (``c=0`` exempts a group from pruning).
        lr: the learning rate :math:`\gamma`, as for SGD without momentum (the paper: 0.1 at batch 256): a number
            or a 0-dim floating tensor (as torch's optimizers accept).
        c: the regularisation strength; larger prunes more (the paper: ``c <= 0.005`` at ImageNet scale).
        mu: the threshold's growth exponent, ``mu > 0`` (the paper uses 0.501 to 0.6; ``mu > 1/2`` for its theory).
        nonfinite: what to do when a gradient holds NaN or inf: ``"raise"``, ``"skip"`` or ``"ignore"``.
        foreach: ``True`` uses torch's multi-tensor kernels for the dual-average update; ``False`` the readable
            single-tensor loop; ``None`` (default) picks the fastest: multi-tensor kernels on accelerators (as torch's
            own optimizers do), and on CPU a loop that thresholds each tensor right after updating its dual average,
            while it is still in cache.
        fused: run the whole step of each group as one ``torch.compile``-d graph: the threshold arithmetic and
            every tensor's update (read the gradient and the dual average once, write the dual average and the
            weight once), horizontally fused over all the group's tensors, as torch's compiled optimizers do.
            Compiled at the first step (seconds, cached on disk by inductor) and reused while the tensors keep
            their shapes; the lr enters as a tensor, so an lr change does not recompile. Needs a working
            ``torch.compile`` (a C++ compiler on CPU). Equal to the eager path up to floating-point contraction.

    torch.compile: ``torch.compile(optimizer.step)`` (or a compiled training step) traces the step as tensors only:
    the step counts and thresholds stay 0-dim float64 tensors, so nothing is read on the host and the step does not
    recompile as they grow. A float ``lr`` that changes recompiles once (torch guards on it); a tensor ``lr``
    changed in place (``fill_``, as torch's schedulers do) never recompiles; a ``load_state_dict`` loads into the
    existing state tensors, so a round trip does not recompile. The non-finite check of ``"raise"``/``"skip"``
    keeps its semantics and its one synchronisation, which under compile is a graph break before the update
    (``nonfinite="ignore"`` gives one graph). Under compile, ``lr``, ``c`` and ``mu`` are not re-checked each step.

    Raises:
        ValueError: an invalid ``lr``, ``c``, ``mu`` or ``nonfinite``, or both ``foreach`` and ``fused``.

    Example:
        >>> model = torch.nn.Linear(4, 2)
        >>> opt = GRDA(model.parameters(), lr=0.1, c=0.05, mu=0.6)
        >>> model(torch.randn(8, 4)).square().mean().backward()
        >>> opt.step()
        >>> opt.state[model.weight]["threshold"].item() == threshold_increment(1, 0.1, 0.05, 0.6)
        True
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 0.01,
        c: float = 0.005,
        mu: float = 0.55,
        *,
        nonfinite: NonFinitePolicy = "raise",
        foreach: bool | None = None,
        fused: bool = False,
    ) -> None:
        check_choice("nonfinite", nonfinite, NONFINITE_POLICIES)
        if fused and foreach:
            raise ValueError(f"Invalid foreach: {foreach!r} with fused=True; the fused path replaces foreach")
        defaults = {"lr": lr, "c": c, "mu": mu, "nonfinite": nonfinite, "foreach": foreach, "fused": fused}
        self.skipped_steps = 0
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a parameter group, checking the group's own ``lr``, ``c`` and ``mu`` first (see :class:`GRDA`)."""
        _check_group(*(param_group.get(key, self.defaults[key]) for key in ("lr", "c", "mu")))
        super().add_param_group(param_group)

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self.__dict__.setdefault("skipped_steps", 0)
        for group in self.param_groups:
            group.setdefault("nonfinite", "raise")
            group.setdefault("foreach", None)
            group.setdefault("fused", False)

    def group_thresholds(self) -> list[float]:
        """The current soft threshold :math:`T_n` of each parameter group (0.0 before the group's first step).

        All parameters of a group share one threshold when they step together; if some skipped steps (no
        gradient), this is the largest threshold in the group.
        """
        out = []
        for group in self.param_groups:
            ts = [self.state[p]["threshold"] for p in group["params"] if "threshold" in self.state.get(p, {})]
            out.append(float(torch.stack(ts).max()) if ts else 0.0)
        return out

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state saved by :meth:`state_dict`, keeping the dual average and the threshold in full precision.

        ``torch.optim.Optimizer.load_state_dict`` casts every floating state tensor but ``step`` to the dtype and
        device of its parameter; for a bfloat16 parameter that would round the dual average (and the threshold) to
        bfloat16 and the next step would not continue exactly. This keeps the saved values, then puts them back in
        the dual average's precision on the parameter's device, and the step and threshold on the host.

        Args:
            state_dict: the state, as returned by :meth:`state_dict`.

        Raises:
            ValueError: the state has no ``c`` or ``mu`` in its param groups: it was not saved by GRDA; or a saved
                dual average's shape differs from its parameter's (the state of another model): nothing is loaded.
        """
        for i, group in enumerate(state_dict["param_groups"]):
            missing = [key for key in ("c", "mu") if key not in group]
            if missing:
                raise ValueError(
                    f"Invalid state_dict: param_groups[{i}] has no {missing}, so it is not a GRDA state (another "
                    "optimizer's checkpoint?). To start gRDA from such weights, fine-tune instead of resuming: load "
                    "the model weights only and let GRDA start its dual average there."
                )
        saved = {
            index: {key: value for key, value in param_state.items() if key in ("dual", "threshold")}
            for index, param_state in state_dict["state"].items()
        }
        saved_ids = [i for group in state_dict["param_groups"] for i in group["params"]]
        where = [(gi, pi) for gi, group in enumerate(self.param_groups) for pi in range(len(group["params"]))]
        params = [p for group in self.param_groups for p in group["params"]]
        for index, p, (gi, pi) in zip(saved_ids, params, where):
            dual = saved.get(index, {}).get("dual")
            if dual is not None and tuple(dual.shape) != tuple(p.shape):
                raise ValueError(
                    f"Invalid state_dict: the dual average of param_groups[{gi}]['params'][{pi}] has shape "
                    f"{tuple(dual.shape)}, the parameter has shape {tuple(p.shape)}: the state is another model's, "
                    "so nothing was loaded"
                )
        previous = {p: dict(self.state[p]) for p in params if p in self.state}
        super().load_state_dict(state_dict)
        for index, p in zip(saved_ids, params):
            if index not in saved or p not in self.state:
                continue
            state = self.state[p]
            if "dual" in saved[index]:
                state["dual"] = saved[index]["dual"].to(device=p.device, dtype=_dual_dtype(p.dtype), copy=True)
            if "threshold" in saved[index]:
                state["threshold"] = torch.as_tensor(saved[index]["threshold"], dtype=torch.float64).cpu().clone()
            state["step"] = torch.as_tensor(state["step"], dtype=torch.float64).cpu().clone()
            # Loaded into the tensors already there, where they fit: a compiled step guards on their identity, so
            # a state_dict round trip (a resume in the same process) then does not recompile.
            for key, old in previous.get(p, {}).items():
                new = state.get(key)
                if isinstance(old, Tensor) and isinstance(new, Tensor) and _same_kind(old, new):
                    state[key] = old.copy_(new)

    def _init_group(
        self,
        group: dict[str, Any],
        params: list[Tensor],
        grads: list[Tensor],
        duals: list[Tensor],
        steps: list[Tensor],
        thresholds: list[Tensor],
    ) -> None:
        for p in group["params"]:
            if p.grad is None:
                continue
            if p.grad.is_sparse:
                raise RuntimeError("GRDA does not support sparse gradients")
            if p.is_complex():
                raise RuntimeError("GRDA does not support complex parameters: the soft threshold needs an order")
            state = self.state[p]
            if len(state) != 0 and state["dual"].shape != p.shape:
                # Never let the update resize a parameter (softshrink's out= would): refuse before any change.
                raise RuntimeError(
                    f"GRDA: the dual average has shape {tuple(state['dual'].shape)} but its parameter has shape "
                    f"{tuple(p.shape)} (was the parameter replaced or resized?); the step was not taken"
                )
            if len(state) == 0:
                # The dual average starts at the parameter's value at its first step: a random init, or the
                # pretrained weights when fine-tuning.
                state["step"] = torch.tensor(0.0, dtype=torch.float64)
                state["threshold"] = torch.tensor(0.0, dtype=torch.float64)
                state["dual"] = p.detach().to(
                    dtype=_dual_dtype(p.dtype), memory_format=torch.preserve_format, copy=True
                )
            params.append(p)
            grads.append(p.grad)
            duals.append(state["dual"])
            steps.append(state["step"])
            thresholds.append(state["threshold"])

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        """Perform one optimisation step.

        Args:
            closure: a closure that re-evaluates the model and returns the loss.

        Returns:
            The loss returned by ``closure``, or None.

        Raises:
            FloatingPointError: a gradient holds NaN or inf and ``nonfinite="raise"``.
            ValueError: a group's ``lr``, ``c`` or ``mu`` was set to an invalid value after construction (nothing
                changed).
            RuntimeError: a parameter's shape no longer matches its dual average (nothing changed).
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()

        # Before any state changes: a scheduler (or a user) may have written a bad value since construction.
        hyper = [_check_group(group["lr"], group["c"], group["mu"]) for group in self.param_groups]
        groups = []
        for group, (lr, c, mu) in zip(self.param_groups, hyper):
            params: list[Tensor] = []
            grads: list[Tensor] = []
            duals: list[Tensor] = []
            steps: list[Tensor] = []
            thresholds: list[Tensor] = []
            self._init_group(group, params, grads, duals, steps, thresholds)
            if params:
                groups.append((group, params, grads, duals, steps, thresholds, lr, c, mu))
        if not groups:
            return loss

        checked = [(group, params, grads) for group, params, grads, *_ in groups if group["nonfinite"] != "ignore"]
        # Meta tensors hold no values: there is nothing to check (torch's SGD steps them too).
        read = [g for *_, grads in checked for g in grads if g.device.type != "meta"]
        names = ""
        if read and not bool(all_finite(read)):
            names = self._describe_nonfinite(checked)
        if names:  # empty when the quick check only saw a finite norm (or sum) overflow
            if any(group["nonfinite"] == "raise" for group, *_ in checked):
                raise FloatingPointError(
                    f"GRDA: non-finite gradient in {names}; the step was not taken. Pass nonfinite='skip' to "
                    "skip such steps instead (the dual average never forgets, so a NaN would stay for good)."
                )
            self.skipped_steps += 1
            warnings.warn(f"GRDA: non-finite gradient in {names}; skipped this step", RuntimeWarning, stacklevel=2)
            return loss

        for group, params, grads, duals, steps, thresholds, lr, c, mu in groups:
            grda(
                params,
                grads,
                duals,
                steps,
                thresholds,
                lr=lr,
                c=c,
                mu=mu,
                foreach=group["foreach"],
                fused=group["fused"],
            )
        return loss

    def _describe_nonfinite(self, checked: list[tuple[dict[str, Any], list[Tensor], list[Tensor]]]) -> str:
        # Only reached on the error path, so one more look at each gradient costs nothing that matters.
        where = {id(p): (gi, pi) for gi, group in enumerate(self.param_groups) for pi, p in enumerate(group["params"])}
        bad = [
            "param_groups[{}]['params'][{}] (shape {})".format(*where[id(p)], tuple(p.shape))
            for _, params, grads in checked
            for p, g in zip(params, grads)
            if g.device.type != "meta" and not bool(g.isfinite().all())
        ]
        return ", ".join(bad)


def _check_group(lr: Any, c: Any, mu: Any) -> tuple[float | Tensor, float, float]:
    """Check one group's hyperparameters (refusing bools; numpy scalars and 0-dim real tensors are numbers).

    A tensor ``lr`` stays a tensor (what keeps an lr change from recompiling a compiled step); its value is checked
    only where reading it costs no synchronisation: on the host.
    """
    if torch.compiler.is_compiling():
        # Traced, a float may be symbolic (torch does not specialise on floats), and checking it would break the
        # graph: under torch.compile the values are those checked at construction (and by every eager step).
        return lr, c, mu
    c, mu = check_real("c", c, low=0.0), check_real("mu", mu, low=0.0, low_open=True)
    if not isinstance(lr, Tensor):
        return check_real("lr", lr, low=0.0), c, mu
    if lr.dim() != 0 or not lr.is_floating_point():
        raise invalid("lr", lr, "a finite real number >= 0.0, or a 0-dim floating tensor holding one")
    if lr.device.type == "cpu":
        check_real("lr", lr, low=0.0)
    return lr, c, mu
