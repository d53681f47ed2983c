"""``GRDASwap``: train any LightningModule with the gRDA optimizer by adding one callback, changing no model code.

Paper: Shih-Kang Chao, Zhanyu Wang, Yue Xing, Guang Cheng. *Directional Pruning of Deep Neural Networks*.
NeurIPS 2020. arXiv:2006.09358. Like the paper, gRDA here has no momentum and no weight decay.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch import Tensor
from torch.optim import Optimizer
from typing_extensions import override

from lightning_grda.callbacks.lr_owners import REPLACES, check_lr_owners, remove_lr_schedulers
from lightning_grda.checks import check_bool, check_real
from lightning_grda.optim.grda import GRDA
from lightning_grda.optim.param_groups import is_adaptive, norm_and_bias_parameters, split_exempt

__all__ = ["GRDASwap"]

# Param-group keys carried over to GRDA; every other key (momentum, weight_decay, betas, eps, ...) is dropped.
_KEPT_KEYS = ("params", "param_names", "lr", "name")


class GRDASwap(Callback):
    """Replace the module's optimizer(s) with :class:`~lightning_grda.optim.grda.GRDA` at fit start.

    For a Trainer user who changes no model code: ``Trainer(callbacks=[GRDASwap(c=0.005, mu=0.55)])``. At
    ``on_fit_start`` (after the strategy has built the optimizers from ``configure_optimizers``, before a checkpoint's
    optimizer states are restored) each optimizer is replaced by a GRDA over the same parameters and param groups,
    set with the public ``trainer.strategy.optimizers``:

    * each group keeps its ``lr`` (``lr`` overrides them all) and its ``name`` and ``param_names`` if any, and gets
      this callback's ``c`` and ``mu``;
    * the keys gRDA does not know (``momentum``, ``weight_decay``, ``nesterov``, ``betas``, ``eps``, ...) are dropped,
      with one info line listing the non-zero ones: gRDA is plain SGD plus a soft threshold, as in the paper. A group
      with ``maximize=True`` is refused (dropping it would reverse the objective);
    * **an adaptive optimizer needs an explicit** ``lr``. gRDA's learning rate is a plain SGD learning rate (the
      paper: 0.1 at batch size 256), while an adaptive optimizer's (Adam's 1e-3 or 1e-4) scales a step already
      normalised per coordinate: kept, gRDA would barely train (19.5 % against 81.8 % eval accuracy at lr 0.1 on
      Lightning's image-classifier example). So without ``lr`` such an optimizer is refused, with a message that
      says how to pass one; there is no default that would fit every model. An optimizer is adaptive when its param
      groups have ``betas`` or ``eps`` (the running moments, and the guard of the per-coordinate denominator): Adam,
      AdamW, Adamax, NAdam, RAdam, RMSprop, Adagrad, Adadelta, Adafactor and most third-party ones (Lion);
    * the LR schedulers are removed with a loud warning (see
      :func:`~lightning_grda.callbacks.lr_owners.remove_lr_schedulers`; a scheduler that had changed the learning
      rate when built gets its ``initial_lr`` back first): they are bound to the replaced optimizer. Use the pack's
      LR callbacks (``OneTimeLRDrop``, ``HoldDecayLR``) for the paper's schedules, listed after this callback;
    * an optimizer that already is a GRDA is left as configured, with a warning.

    Several optimizers (manual optimization, e.g. a GAN): **all are converted**, each to its own GRDA, in order, so
    the module's ``self.optimizers()`` keeps its structure and indices (it returns fresh ``LightningOptimizer``
    wrappers around the new optimizers). A warning names them, because every parameter they optimise is then pruned;
    to prune only some, return a GRDA for those from ``configure_optimizers`` instead of using this callback.
    A manual-optimization module that configures LR schedulers is refused: its ``training_step`` steps them itself.

    Resuming: the callback holds no state; the GRDA state (dual averages, step counts, thresholds) is in the
    checkpoint's optimizer states, which Lightning loads into the swapped optimizers, so
    ``trainer.fit(model, ckpt_path=...)`` continues exactly. A checkpoint whose optimizer states are not gRDA's
    (written without this callback) is refused by ``GRDA.load_state_dict`` with a clear error: to prune from those
    weights, fine-tune (load the weights, fit without ``ckpt_path``); the dual average then starts at the loaded
    weights.

    Args:
        c: the regularisation strength, ``c >= 0`` (the paper: ``c <= 0.005`` at ImageNet scale).
        mu: the threshold's growth exponent, ``mu > 0``.
        lr: the learning rate of every param group; None (default) keeps each group's own.
        exempt_norm_and_bias: split each param group into its pruned parameters and its biases and normalisation
            parameters (see :func:`~lightning_grda.optim.norm_and_bias_parameters`), the latter with ``c=0``. The
            pruned groups come first, so group 0 is pruned. Default False: every parameter is pruned, as in the paper.

    Raises:
        ValueError: an invalid ``c``, ``mu`` or ``lr``, or ``exempt_norm_and_bias`` not a bool.

    Example:
        >>> GRDASwap(c=0.001).state_key
        "GRDASwap{'c': 0.001, 'mu': 0.55, 'lr': None, 'exempt_norm_and_bias': False}"
        >>> GRDASwap(mu=0)
        Traceback (most recent call last):
        ...
        ValueError: Invalid mu: 0; expected a finite real number > 0.0
    """

    lr_role = REPLACES  #: see :mod:`lightning_grda.callbacks.lr_owners`

    def __init__(
        self, c: float = 0.005, mu: float = 0.55, lr: float | None = None, exempt_norm_and_bias: bool = False
    ) -> None:
        check_real("c", c, low=0.0)
        check_real("mu", mu, low=0.0, low_open=True)
        if lr is not None:  # None: keep each group's (see on_fit_start)
            check_real("lr", lr, low=0.0)
        check_bool("exempt_norm_and_bias", exempt_norm_and_bias)
        self.c = c
        self.mu = mu
        self.lr = lr
        self.exempt_norm_and_bias = exempt_norm_and_bias

    @property
    @override
    def state_key(self) -> str:
        return self._generate_state_key(
            c=self.c, mu=self.mu, lr=self.lr, exempt_norm_and_bias=self.exempt_norm_and_bias
        )

    @override
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        check_lr_owners(trainer)
        optimizers = list(trainer.strategy.optimizers)
        if not any(opt.param_groups for opt in optimizers):
            raise ValueError(
                f"Invalid module: {type(pl_module).__name__}.configure_optimizers configures no optimizer, so "
                "GRDASwap has nothing to replace; return an optimizer (or GRDA) from it"
            )
        if not pl_module.automatic_optimization and trainer.strategy.lr_scheduler_configs:
            raise ValueError(
                f"Invalid module: {type(pl_module).__name__} uses manual optimization and configures LR schedulers, "
                "which its training_step steps itself; GRDASwap would have to remove them. Return GRDA from "
                "configure_optimizers instead (see lightning_grda.mixin.GRDAMixin)."
            )
        for i, opt in enumerate(optimizers):
            for j, group in enumerate(opt.param_groups):
                if group.get("maximize", False):
                    raise ValueError(
                        f"Invalid param group {j} of optimizer {i} ({type(opt).__name__}): maximize=True; "
                        "GRDA minimises, so GRDASwap refuses to drop it"
                    )
                if self.lr is None and "lr" not in group:
                    raise ValueError(
                        f"Invalid param group {j} of optimizer {i} ({type(opt).__name__}): no lr to keep; "
                        "pass GRDASwap(lr=...)"
                    )
            if self.lr is None and not isinstance(opt, GRDA) and is_adaptive(opt):
                lrs = sorted({float(group["lr"]) for group in opt.param_groups})
                raise ValueError(
                    f"Invalid lr: None; GRDASwap would keep the lr of {type(opt).__name__} "
                    f"({lrs[0] if len(lrs) == 1 else lrs}), an adaptive optimizer whose step is normalised per "
                    "coordinate, but gRDA's lr is a plain SGD learning rate (the paper: 0.1 at batch size 256; scale "
                    "it with the batch size): pass one, GRDASwap(lr=0.1), or `init_args: {lr: 0.1}` under "
                    "GRDASwap in a config"
                )
        # First, so that a scheduler that changed the lr when built gives back the configured one, which is copied.
        remove_lr_schedulers(trainer, owner=type(self).__name__)
        exempt = {id(p) for _, p in norm_and_bias_parameters(pl_module)} if self.exempt_norm_and_bias else set()
        swapped = [
            opt if isinstance(opt, GRDA) or not opt.param_groups else self._swap(opt, exempt) for opt in optimizers
        ]
        already = [opt for opt in optimizers if isinstance(opt, GRDA)]
        if already:
            rank_zero_warn(
                f"GRDASwap: the module already configures GRDA ({len(already)} of {len(optimizers)} optimizers), "
                f"left as configured: GRDASwap(c={self.c!r}, mu={self.mu!r}, lr={self.lr!r}) does not apply to it."
            )
        replaced = [type(opt).__name__ for opt, new in zip(optimizers, swapped) if new is not opt]
        if len(replaced) > 1:
            rank_zero_warn(
                f"GRDASwap converted {len(replaced)} optimizers {replaced} to GRDA: every parameter they optimise is "
                "pruned. To prune only some, return GRDA for those from configure_optimizers instead."
            )
        trainer.strategy.optimizers = swapped

    def _swap(self, optimizer: Optimizer, exempt: set[int]) -> GRDA:
        """A GRDA over ``optimizer``'s param groups, pruned groups first; logs what was dropped."""
        groups: list[dict[str, Any]] = []
        dropped: dict[str, Any] = {}
        for group in optimizer.param_groups:
            base = {key: group[key] for key in _KEPT_KEYS if key in group}
            lr = group["lr"] if self.lr is None else self.lr
            base.update(lr=float(lr) if isinstance(lr, Tensor) else lr, c=self.c, mu=self.mu)
            dropped.update({k: v for k, v in group.items() if k not in _KEPT_KEYS and k != "initial_lr" and _is_set(v)})
            groups.append(base)
        groups = split_exempt(groups, exempt)
        kept = [group for group in groups if id(group["params"][0]) in exempt]
        swapped = GRDA(groups, lr=groups[0]["lr"], c=self.c, mu=self.mu)
        lrs = sorted({group["lr"] for group in swapped.param_groups})
        message = (
            f"GRDASwap: replaced {type(optimizer).__name__} with GRDA(c={self.c!r}, mu={self.mu!r}, "
            f"lr={lrs[0] if len(lrs) == 1 else lrs!r}) over {len(swapped.param_groups)} param group(s)"
        )
        if kept:
            message += f", {len(kept)} of them biases and normalisation parameters with c=0"
        if dropped:
            shown = ", ".join(f"{key}={value!r}" for key, value in dropped.items())
            message += f"; dropped {shown} (gRDA is plain SGD plus a soft threshold, as in the paper)"
        rank_zero_info(message)
        return swapped


def _is_set(value: Any) -> bool:
    """Whether a dropped param-group value is worth reporting: not None, False or a zero."""
    if value is None or value is False:
        return False
    return not (isinstance(value, (int, float)) and value == 0)
