"""gRDA: generalized regularized dual averaging, an optimizer that prunes while it trains.

Paper: Shih-Kang Chao, Zhanyu Wang, Yue Xing, Guang Cheng. *Directional Pruning of Deep Neural Networks*.
NeurIPS 2020. arXiv:2006.09358.

Written from the paper's update rule (see ``shared/DESIGN.md``, "The algorithm, exactly"); no code was taken from
the authors' repositories.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal

import torch
from torch import Tensor
from torch.nn.functional import softshrink
from torch.optim import Optimizer

from lightning_grda.checks import check_choice, check_real, invalid

__all__ = ["GRDA", "grda", "threshold_increment"]

NonFinitePolicy = Literal["raise", "skip", "ignore"]
_NONFINITE_POLICIES = ("raise", "skip", "ignore")
# On CPU, gradients with at least this many values are checked by their own sum; smaller ones share one
# _foreach_norm call (see _all_finite).
_SUM_ONE_BY_ONE = 1 << 16


def threshold_increment(step: float, lr: float, c: float, mu: float) -> float:
    """The growth of the soft threshold at step ``step``: ``c * lr**(mu + 1/2) * (step**mu - (step - 1)**mu)``.

    Summed over steps ``1..n`` at a constant ``lr`` it telescopes to the paper's closed form
    ``c * sqrt(lr) * (n * lr)**mu``.

    Args:
        step: the step number ``n >= 1``.
        lr: the learning rate used at this step.
        c: the regularisation strength.
        mu: the growth exponent.

    Example:
        >>> round(threshold_increment(1, lr=0.01, c=1.0, mu=0.5), 12)  # c * sqrt(lr) * lr**mu at n = 1
        0.01
        >>> import math
        >>> n, lr, c, mu = 100, 0.1, 0.005, 0.55
        >>> total = sum(threshold_increment(k, lr, c, mu) for k in range(1, n + 1))
        >>> math.isclose(total, c * math.sqrt(lr) * (n * lr) ** mu)
        True
    """
    return c * lr ** (mu + 0.5) * (step**mu - (step - 1) ** mu)


def _dual_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the dual average is kept in: float64 for float64 parameters, float32 for every other precision."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _same_kind(a: Tensor, b: Tensor) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and a.device == b.device and a.stride() == b.stride()


def _any_dtensor(tensors: Sequence[Tensor]) -> bool:
    if not torch.distributed.is_available():  # a torch build without distributed has no DTensor
        return False
    from torch.distributed.tensor import DTensor

    return any(isinstance(t, DTensor) for t in tensors)


def _all_finite(grads: Sequence[Tensor]) -> Tensor:
    """A 0-dim bool tensor, False if any entry of any gradient may be NaN or inf. Reads each gradient once, no sync.

    A sum (or a 2-norm) is NaN or inf whenever one of its terms is. On accelerators, float32/float64 gradients take
    one ``torch._foreach_norm`` call (one multi-tensor kernel, as ``clip_grad_norm_`` uses). On CPU that call runs
    each norm on one thread, so there the large gradients are summed one by one (torch's sum splits a large tensor
    over the threads and reads at memory speed; it also overflows later than a norm's squares) and only the many
    small ones (biases, normalisation parameters) share the ``_foreach_norm`` call, a single C++ loop where a Python
    loop of small reductions costs more than the reading. FSDP2's DTensor gradients are all summed: a sum and a
    norm reduce across ranks in two ways that one stack cannot mix. Half-precision gradients, whose sums would
    overflow at 65504, are summed in float32. Finite values can still overflow a sum (above 3e38 in float32) or a
    norm (above 1e19): callers confirm a False answer element by element before acting on it. In reverse order, so
    that the update then starts with the gradients read last, which may still sit in the CPU's cache.
    """
    if _any_dtensor(grads):
        one_by_one: float = 0
    elif grads[0].device.type == "cpu":
        one_by_one = _SUM_ONE_BY_ONE
    else:
        one_by_one = float("inf")
    wide = [g for g in reversed(grads) if g.dtype in (torch.float32, torch.float64)]
    small = [g for g in wide if g.numel() < one_by_one]
    checks = [
        g.sum() if g.dtype in (torch.float32, torch.float64) else g.sum(dtype=torch.float32)
        for g in reversed(grads)
        if g.dtype not in (torch.float32, torch.float64) or g.numel() >= one_by_one
    ]
    if small:
        checks += torch._foreach_norm(small, 2.0)
    device = grads[0].device
    if any(c.device != device for c in checks):
        checks = [c.to(device, non_blocking=True) for c in checks]
    return torch.stack(checks).isfinite().all()


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
        check_choice("nonfinite", nonfinite, _NONFINITE_POLICIES)
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
        if read and not bool(_all_finite(read)):
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


def grda(
    params: list[Tensor],
    grads: list[Tensor],
    duals: list[Tensor],
    steps: list[Tensor],
    thresholds: list[Tensor],
    *,
    lr: float | Tensor,
    c: float,
    mu: float,
    foreach: bool | None = None,
    fused: bool = False,
) -> None:
    """Functional gRDA: one step for the given tensors, in place. See :class:`GRDA` for the algorithm.

    ``steps`` and ``thresholds`` are 0-dim float64 host tensors, one per parameter; ``duals`` are the dual averages.
    The threshold increments are computed on the host, so nothing here waits for an accelerator.

    Args:
        params: the parameters, updated in place.
        grads: their gradients.
        duals: their dual averages, updated in place.
        steps: their step counts, incremented in place.
        thresholds: their soft thresholds, updated in place.
        lr: the learning rate of this step.
        c: the regularisation strength.
        mu: the growth exponent.
        foreach: ``True``: multi-tensor kernels for the dual-average update; ``False``: the readable reference loop;
            ``None`` (default): multi-tensor kernels on accelerators, and on CPU a loop that thresholds each tensor
            right after its update, while its dual average is still in cache.
        fused: the whole step as one compiled graph (see :class:`GRDA`).
    """
    if not params:
        return
    if torch.compiler.is_compiling():  # traced: everything stays a tensor, nothing is read on the host
        _tensor_grda(params, grads, duals, steps, thresholds, lr, c, mu)
        return
    if fused:
        from lightning_grda.optim._fused import compiled_grda_

        compiled_grda_(params, grads, duals, steps, thresholds, lr, c, mu)
        return
    if isinstance(lr, Tensor):
        lr = lr.item()  # eager: a host read (free for a CPU tensor, one synchronisation for an accelerator's)
    torch._foreach_add_(steps, 1.0)
    new_thresholds = _advance_thresholds(steps, thresholds, lr, c, mu)
    if foreach or (foreach is None and params[0].device.type != "cpu"):
        _multi_tensor_grda(params, grads, duals, lr, new_thresholds)
    else:
        _single_tensor_grda(params, grads, duals, lr, new_thresholds)


def _tensor_grda(
    params: list[Tensor],
    grads: list[Tensor],
    duals: list[Tensor],
    steps: list[Tensor],
    thresholds: list[Tensor],
    lr: float | Tensor,
    c: float,
    mu: float,
) -> None:
    """The step written in tensors only, for ``torch.compile`` (one graph, horizontally fused by inductor).

    The step counts and thresholds stay 0-dim float64 tensors: the increment
    ``c * lr**(mu + 1/2) * (n**mu - (n - 1)**mu)`` is computed from them in float64 and added in float64, as the
    eager path does with Python floats. The soft threshold is written ``a - clamp(a, -T, T)``, which is
    ``softshrink(a, T)`` element for element (``a - T`` above ``T``, ``a + T`` below ``-T``, else 0) and takes a
    tensor ``T``. Only floating-point contraction (fused multiply-add) may differ from the eager path.
    """
    torch._foreach_add_(steps, 1.0)
    previous = torch._foreach_sub(steps, 1.0)
    increments = torch._foreach_sub(torch._foreach_pow(steps, mu), torch._foreach_pow(previous, mu))
    if isinstance(lr, Tensor):
        lr64 = lr.to(torch.float64)
        torch._foreach_mul_(increments, c * lr64 ** (mu + 0.5))
    else:
        torch._foreach_mul_(increments, c * lr ** (mu + 0.5))
    torch._foreach_add_(thresholds, increments)
    for p, g, a, t in zip(params, grads, duals, thresholds):
        a.sub_(g.to(a.dtype) * lr)
        p.copy_(a - a.clamp(-t, t))


def _advance_thresholds(steps: list[Tensor], thresholds: list[Tensor], lr: float, c: float, mu: float) -> list[float]:
    """Add each parameter's threshold increment in place; return the new thresholds as Python floats.

    Parameters of a group almost always share one step count, so the increment is computed once per distinct step.
    """
    counts = torch.stack(steps).tolist()
    increments: dict[float, float] = {}
    for n in counts:
        if n not in increments:
            increments[n] = threshold_increment(n, lr, c, mu)
    torch._foreach_add_(thresholds, [increments[n] for n in counts])
    return torch.stack(thresholds).tolist()


def _probe_softshrink_out() -> Callable[..., Tensor] | None:
    """The private ``softshrink`` binding that takes ``out=``, if this torch has one that works; else None.

    ``torch._C._nn.softshrink`` is what ``F.softshrink`` calls; it takes ``out=`` (``F.softshrink`` does not) and costs
    a third less per call than ``torch.ops.aten.softshrink.out``, which matters for the many small tensors. Being
    private, it may change or go: it is tried once here on a tiny tensor, and the public op is used without it.
    """
    op = getattr(getattr(torch._C, "_nn", None), "softshrink", None)
    if op is None:
        return None
    try:
        out = torch.empty(2)
        op(torch.tensor([-1.0, 0.25]), 0.5, out=out)
    except Exception:  # noqa: BLE001 - any failure of a private binding means: do not use it
        return None
    return op if out.tolist() == [-0.5, 0.0] else None


_softshrink_out = _probe_softshrink_out()


def _shrink_into(p: Tensor, a: Tensor, t: float) -> None:
    """``p = softshrink(a, t)``, written straight into ``p`` when it has the dual average's dtype (no temporary)."""
    if _softshrink_out is not None and p.dtype == a.dtype:
        _softshrink_out(a, t, out=p)
    else:
        p.copy_(softshrink(a, t))


def _single_tensor_grda(
    params: list[Tensor], grads: list[Tensor], duals: list[Tensor], lr: float, thresholds: list[float]
) -> None:
    """The readable loop, and the CPU default.

    Each tensor's soft threshold comes right after its update, while its dual average is still in cache.
    """
    for p, g, a, t in zip(params, grads, duals, thresholds):
        a.add_(g, alpha=-lr)
        _shrink_into(p, a, t)


def _multi_tensor_grda(
    params: list[Tensor], grads: list[Tensor], duals: list[Tensor], lr: float, thresholds: list[float]
) -> None:
    """The accelerator path: one multi-tensor add, then the soft threshold written straight into each parameter.

    ``softshrink``'s ``out=`` form writes the weight without a temporary when the parameter has the dual average's
    dtype; half-precision parameters take one temporary in float32 and a cast, as the precision requires.
    """
    same = [i for i, (p, a, g) in enumerate(zip(params, duals, grads)) if g.dtype == a.dtype and g.device == a.device]
    if len(same) == len(params):
        torch._foreach_add_(duals, grads, alpha=-lr)
    else:
        if same:
            torch._foreach_add_([duals[i] for i in same], [grads[i] for i in same], alpha=-lr)
        for i in sorted(set(range(len(params))) - set(same)):
            duals[i].add_(grads[i], alpha=-lr)
    for p, a, t in zip(params, duals, thresholds):
        _shrink_into(p, a, t)
