"""``GRDAMixin``: make a LightningModule train with the gRDA optimizer, new or existing, without editing it.

Paper: Shih-Kang Chao, Zhanyu Wang, Yue Xing, Guang Cheng. *Directional Pruning of Deep Neural Networks*.
NeurIPS 2020. arXiv:2006.09358. The paper prunes every parameter, biases and normalisation layers included.
"""

from __future__ import annotations

import inspect
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch import nn

from lightning_grda._fsdp1 import refuse_fsdp1
from lightning_grda.checks import check_bool, check_real
from lightning_grda.optim.grda import GRDA
from lightning_grda.optim.param_groups import NORM_MODULES, norm_and_bias_parameters, split_exempt

# NORM_MODULES and norm_and_bias_parameters live in lightning_grda.optim.param_groups; importable from here as before.
__all__ = ["GRDAMixin", "NORM_MODULES", "norm_and_bias_parameters"]

_GRDA_DEFAULTS = {name: inspect.signature(GRDA).parameters[name].default for name in ("lr", "c", "mu")}

#: The module hyperparameters each GRDA hyperparameter is looked up under, in this order. ``learning_rate`` is the
#: name Lightning's own examples and ``Tuner.lr_find`` use.
HPARAM_NAMES: dict[str, tuple[str, ...]] = {"lr": ("lr", "learning_rate"), "c": ("c",), "mu": ("mu",)}


class GRDAMixin:
    """Mix into a LightningModule so that its ``configure_optimizers`` returns a GRDA optimizer.

    List it **first** among the bases, before the LightningModule it modifies:

    * A new module takes the gRDA hyperparameters as its own init arguments and saves them with
      ``save_hyperparameters``, so that LightningCLI and checkpoints carry them::

          class Net(GRDAMixin, L.LightningModule):
              def __init__(self, lr: float = 0.1, c: float = 0.005, mu: float = 0.55):
                  super().__init__()
                  self.save_hyperparameters()

    * An existing module is left unedited; its ``configure_optimizers`` is replaced::

          class Pruned(GRDAMixin, TheirModule):
              pass

          model = Pruned(their_arg=1, grda_c=0.001)

      The mixin adds the keyword-only arguments below to the module's own. LightningCLI shows both in the
      ``model`` section (jsonargparse follows ``**kwargs`` through ``super().__init__`` along the MRO), e.g.
      ``--model.grda_c 0.001 --model.lr 0.2``.

    Each hyperparameter of :class:`~lightning_grda.optim.grda.GRDA` is resolved in this order: the mixin's
    ``grda_lr`` / ``grda_c`` / ``grda_mu`` argument when not None; else the module's hyperparameter when present and
    not None: for the learning rate ``hparams["lr"]``, then ``hparams["learning_rate"]`` (the name Lightning's
    examples and ``Tuner.lr_find`` use), for the others ``hparams["c"]`` / ``hparams["mu"]`` (so gRDA takes an
    existing module's own learning rate, which is what a user switching optimizer expects); else GRDA's default.
    ``configure_optimizers`` logs the values and where each came from, and warns when the learning rate is GRDA's
    default 0.01 because the module has neither hyperparameter (gRDA's lr is an SGD learning rate; the paper's is
    0.1 at batch size 256). Beware a module whose ``c`` or ``mu`` hyperparameter means something else (a channel
    count): set ``grda_c`` / ``grda_mu`` explicitly there.

    The ``grda_*`` arguments that are set are stored in ``self.hparams`` (merged, never replacing what the module
    saved itself), so that checkpoints carry them and ``Pruned.load_from_checkpoint(path)`` restores them. When the
    module calls ``self.save_hyperparameters()`` in its ``__init__``, Lightning already records them (it collects the
    arguments of every ``__init__`` on the call stack, the mixin's included); the mixin adds whichever are missing
    after the module's ``__init__`` returns (the module saved selected names, or none).

    Fine-tuning vs resuming:
        These are two different paths. **Fine-tuning** starts a new gRDA run from trained weights: load them
        (``Pruned.load_from_checkpoint(path)``, or ``model.load_state_dict(torch.load(path)["state_dict"])``) and
        call ``trainer.fit(model)`` **without** ``ckpt_path``. The dual average starts at the loaded weights (GRDA
        sets it to each parameter's value at its first step) and the soft threshold starts at zero, so the weights
        are only pruned as the threshold grows. **Resuming** continues an interrupted gRDA run:
        ``trainer.fit(model, ckpt_path=path)`` restores the optimizer state, the dual average, step count and
        threshold included, and the run continues exactly as if uninterrupted. Do not resume from a checkpoint
        written by another optimizer (its state is not gRDA's): fine-tune from it instead.

    Args:
        *args: passed to the next class's ``__init__`` (the LightningModule's).
        grda_lr: the learning rate; None: the module's ``hparams["lr"]``, else ``hparams["learning_rate"]``, else
            GRDA's default (with a warning).
        grda_c: the regularisation strength; None: ``hparams["c"]``, else GRDA's default.
        grda_mu: the threshold's growth exponent; None: ``hparams["mu"]``, else GRDA's default.
        grda_exempt_norm_and_bias: put biases and normalisation parameters (see
            :func:`~lightning_grda.optim.norm_and_bias_parameters`) in a second param group with ``c=0``, which is
            plain SGD. Default False: every parameter is pruned, as
            in the paper. The pruned group is group 0.
        **kwargs: passed to the next class's ``__init__``.

    Raises:
        TypeError: at class definition, when the class is not a LightningModule or when a base listed before
            ``GRDAMixin`` defines ``configure_optimizers`` (the mixin's would never be used).
        ValueError: an invalid ``grda_*`` argument.

    Example:
        >>> import lightning as L
        >>> class Net(GRDAMixin, L.LightningModule):
        ...     def __init__(self, lr: float = 0.1, c: float = 0.005, mu: float = 0.55):
        ...         super().__init__()
        ...         self.save_hyperparameters()
        ...         self.layer = nn.Linear(4, 2)
        >>> opt = Net(c=0.01).configure_optimizers()
        >>> type(opt).__name__, opt.defaults["lr"], opt.defaults["c"], opt.defaults["mu"]
        ('GRDA', 0.1, 0.01, 0.55)
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not issubclass(cls, pl.LightningModule):
            raise TypeError(
                f"GRDAMixin must be mixed into a LightningModule: {cls.__qualname__} is not a subclass of "
                "lightning.pytorch.LightningModule; write `class Pruned(GRDAMixin, YourLightningModule)`"
            )
        mro = cls.__mro__
        for base in mro[: mro.index(GRDAMixin)]:
            # A subclass of the mixin may override configure_optimizers on purpose; a base listed before the mixin
            # that is not one of its subclasses would silently win over it.
            if "configure_optimizers" in vars(base) and not issubclass(base, GRDAMixin):
                raise TypeError(
                    f"Invalid bases for {cls.__qualname__}: {base.__qualname__}.configure_optimizers comes before "
                    "GRDAMixin's in the method resolution order, so GRDA would never be used; list GRDAMixin first, "
                    f"e.g. `class {cls.__name__}(GRDAMixin, {base.__name__})`"
                )

    def __init__(
        self,
        *args: Any,
        grda_lr: float | None = None,
        grda_c: float | None = None,
        grda_mu: float | None = None,
        grda_exempt_norm_and_bias: bool = False,
        **kwargs: Any,
    ) -> None:
        for name, value in (("grda_lr", grda_lr), ("grda_c", grda_c), ("grda_mu", grda_mu)):
            if value is not None:  # None: resolved later (see `grda_hyperparameters`)
                check_real(name, value, low=0.0, low_open=name == "grda_mu")
        check_bool("grda_exempt_norm_and_bias", grda_exempt_norm_and_bias)
        super().__init__(*args, **kwargs)
        self.grda_lr = grda_lr
        self.grda_c = grda_c
        self.grda_mu = grda_mu
        self.grda_exempt_norm_and_bias = grda_exempt_norm_and_bias
        # Merge into (never replace) what the module's own `save_hyperparameters` stored inside `super().__init__`;
        # `save_hyperparameters` itself would reset `_hparams_name`, which `load_from_checkpoint` relies on.
        given = {
            "grda_lr": grda_lr,
            "grda_c": grda_c,
            "grda_mu": grda_mu,
            "grda_exempt_norm_and_bias": grda_exempt_norm_and_bias or None,
        }
        for key, value in given.items():
            if value is not None and self.hparams.get(key) != value:
                self.hparams[key] = value

    def grda_hyperparameters(self) -> dict[str, tuple[float, str]]:
        """The resolved ``lr``, ``c`` and ``mu`` of GRDA, each with where it came from.

        Returns:
            ``{"lr": (value, source), "c": ..., "mu": ...}``, ``source`` being ``"grda_lr"`` (the mixin's argument),
            ``"hparams['lr']"``, ``"hparams['learning_rate']"`` (see :data:`HPARAM_NAMES`) or ``"GRDA default"``.
        """
        hparams = self.hparams
        explicit = {"lr": self.grda_lr, "c": self.grda_c, "mu": self.grda_mu}
        out = {}
        for name, value in explicit.items():
            found = [key for key in HPARAM_NAMES[name] if hparams.get(key) is not None]
            if value is not None:
                out[name] = (value, f"grda_{name}")
            elif found:
                out[name] = (hparams[found[0]], f"hparams[{found[0]!r}]")
            else:
                out[name] = (_GRDA_DEFAULTS[name], "GRDA default")
        return out

    def configure_optimizers(self) -> GRDA:
        """A :class:`~lightning_grda.optim.grda.GRDA` over all parameters, with the resolved hyperparameters.

        With ``grda_exempt_norm_and_bias``, group 0 holds the pruned parameters and group 1 (``c=0``) the biases and
        normalisation parameters; an empty group is left out.

        Returns:
            The optimizer.

        Raises:
            ValueError: ``grda_exempt_norm_and_bias`` under Lightning's FSDP1 strategy, whose 1-D parameter pieces
                cannot be told apart (use FSDP2, ``ModelParallelStrategy``).
        """
        resolved = self.grda_hyperparameters()
        values = {name: value for name, (value, _) in resolved.items()}
        params: list[nn.Parameter] | list[dict[str, Any]]
        if self.grda_exempt_norm_and_bias:
            refuse_fsdp1(
                getattr(self, "_trainer", None),
                "grda_exempt_norm_and_bias",
                "every piece would look like a bias and nothing would be pruned",
            )
            exempt = {id(p) for _, p in norm_and_bias_parameters(self)}
            params = split_exempt([{"params": list(self.parameters())}], exempt)
        else:
            params = list(self.parameters())
        optimizer = GRDA(params, **values)
        summary = ", ".join(f"{name}={value!r} ({source})" for name, (value, source) in resolved.items())
        exempt_note = ""
        if self.grda_exempt_norm_and_bias:
            n_exempt = sum(p.numel() for p in params[-1]["params"]) if params[-1].get("c") == 0.0 else 0
            exempt_note = f"; {n_exempt} bias and normalisation weights exempt (c=0)"
        rank_zero_info(f"{type(self).__name__}: GRDA with {summary}{exempt_note}")
        if resolved["lr"][1] == "GRDA default":
            rank_zero_warn(
                f"{type(self).__name__} has no `lr` or `learning_rate` hyperparameter and no `grda_lr` was given: GRDA "
                f"uses its default lr={resolved['lr'][0]!r}. gRDA's lr is a plain SGD learning rate (the paper: 0.1 "
                "at batch size 256): pass grda_lr=..."
            )
        return optimizer
