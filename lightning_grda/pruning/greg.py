"""GReg: pruning by a growing L2 penalty, as a Trainer callback.

Paper: Huan Wang, Can Qin, Yulun Zhang, Yun Fu. *Neural Pruning via Growing Regularization*. ICLR 2021.
arXiv:2012.09243. Reference implementation: github.com/MingSun-Tse/Regularization-Pruning (no code taken from it).
"""

from __future__ import annotations

from typing import Any, Literal

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch import Tensor, nn
from typing_extensions import override

from lightning_grda.checks import check_bool, check_choice, check_int, check_real
from lightning_grda.layers import LayerSpec, check_layers, layer_names
from lightning_grda.pruning.greg_schedule import GRegSchedule, Phase
from lightning_grda.pruning.masks import apply_mask, is_pruned, make_pruning_permanent, trainable
from lightning_grda.pruning.pruned_layers import PrunedLayers
from lightning_grda.sparsity import PruningRow

__all__ = ["GReg", "GRegSchedule", "Phase"]


class GReg(Callback):
    r"""Prune while training with GReg: grow an L2 penalty on the weights to prune, then mask them and fine-tune.

    Four phases, driven by optimizer steps (``trainer.global_step``, counted from the step at which the callback
    first trains, so GReg can be added to a run resumed from a pretrained checkpoint):

    1. **grow**: the weights to prune are picked, per layer, as the ``sparsity`` fraction with the smallest ``|w|``
       (``granularity="weight"``) or the output channels with the smallest L1 norm (``"filter"``); the penalty
       ``lambda * w`` is added to their gradients, ``lambda`` growing by ``delta`` every ``update_interval`` steps
       until ``ceiling``;
    2. **hold**: ``lambda = ceiling`` for ``hold_steps`` steps;
    3. **prune**: at the start of the next step the picked weights are masked to zero with
       :mod:`torch.nn.utils.prune`;
    4. **fine-tune**: no penalty; the masks hold for the rest of training.

    GReg-2 (``variant=2``) first grows a uniform penalty on **all** weights of each layer (``pick_delta`` every
    ``update_interval`` steps up to ``pick_ceiling``), so that weights in flat directions of the loss shrink faster
    than the others; then it re-picks by magnitude and proceeds as GReg-1, its penalty growing on from
    ``pick_ceiling``. The exact step-by-step schedule is :class:`GRegSchedule`.

    **The penalty** is added to ``param.grad`` in ``on_before_optimizer_step``: after the gradients of all
    accumulated micro-batches are summed and (under AMP) unscaled, before gradient clipping and the optimizer step.
    It therefore works with any optimizer (the paper uses SGD with momentum) and is clipped with the loss gradient.
    The picks are kept by the callback as one boolean mask per layer (``picked``), saved in its checkpoint state.

    **Masks** look as with Lightning's ``ModelPruning``: the pruned layer's ``weight`` becomes ``weight_orig`` (the
    same ``Parameter``, so the optimizer keeps updating it) times a buffer ``weight_mask``. The effective weight is
    exactly zero at masked entries after every optimizer step, with momentum and weight decay too; in addition the
    masked entries of ``weight_orig`` are zeroed after every step, so ``weight_orig`` and the baked weights never show
    a leak. ``make_permanent=True`` (or :meth:`make_permanent`) bakes the masks in at the end of fitting.

    **Filters.** With ``granularity="filter"`` a filter is an output channel: dim 0 of the weight (a conv's output
    channel, a ``Linear`` weight's row), scored by its L1 norm. Its bias entry, if the layer has a bias, is penalised
    and masked with it, so a pruned channel's output is exactly zero (a following normalisation layer's shift is
    not touched). Leave the classifier out of ``layers`` for filter pruning: its rows are the classes.

    **Resume** from a checkpoint taken in any phase continues exactly: the callback state (start step, phase,
    penalty, picks, the steps at which it picked and pruned) is in the checkpoint, and a pruned checkpoint loads into
    a fresh, unpruned model (at ``setup`` the callback registers ``load_state_dict`` pre-hooks that re-create the
    prune structure before the weights load; see :mod:`lightning_grda.pruning.masks`).

    **DDP**: the picks are computed on each rank from the same weights with a stable sort, so masks and penalties are
    identical on every rank without communication.

    **Logged Metrics**

    - ``greg/phase``: the :class:`Phase` number of the current step (also in the progress bar).
    - ``greg/lambda``: the penalty factor of the current step (on all weights in ``PICK``, on the picked ones after).

    Each phase change is announced with an info line on rank zero; at the end of fitting a table (see
    :meth:`report`) counts per layer the filters removed and the zero weights.

    **Defaults** are scaled for the embedded digits job (~21 optimizer steps per epoch at batch 64): ``delta=0.01``
    every 2 steps reaches ``ceiling=1`` at step 200 (~10 epochs), then 100 hold steps (~5 epochs), pruning at step
    300; GReg-2's uniform stage (``1e-4`` every 2 steps to ``1e-2``) adds 200 steps before. The paper's CIFAR schedule
    is ``GReg(delta=1e-4, update_interval=10, ceiling=1.0, hold_steps=10_000)``; the authors' code uses
    ``pick_delta=1e-5, pick_ceiling=1e-2`` for GReg-2 (and ``update_interval=5``, 40,000 hold steps on ImageNet).

    Args:
        variant: 1 (GReg-1) or 2 (GReg-2).
        sparsity: the fraction of each layer's weights (or filters) to prune, ``0 <= sparsity < 1``; per layer,
            ``round(sparsity * n)`` as in :mod:`torch.nn.utils.prune`.
        granularity: ``"weight"`` (unstructured) or ``"filter"`` (output channels).
        delta: the penalty's increment, ``> 0``.
        update_interval: ``K_u``, optimizer steps between increments, ``>= 1``.
        ceiling: the penalty at which growing stops, ``> 0``.
        hold_steps: steps at ``ceiling`` before pruning, ``>= 0``.
        pick_delta: GReg-2: the uniform penalty's increment, ``> 0``.
        pick_ceiling: GReg-2: the uniform penalty at which the weights are re-picked, ``0 < pick_ceiling < ceiling``.
        layers: which layers' weights to prune (default: every ``Conv2d`` and ``Linear``): a module class, a name
            regex (:func:`re.search` on qualified names such as ``"net.fc1"``) or class name, or a list of those.
            An entry that matches nothing is an error at ``setup``.
        warmup_steps: optimizer steps of plain training before the schedule starts, ``>= 0``. GReg is meant for a
            trained network (the paper starts from pretrained weights): from a random initialisation, give enough
            steps for the magnitudes that pick the pruned weights to mean something, or start from a checkpoint.
        make_permanent: at the end of fitting, bake the masks into the weights (``torch.nn.utils.prune.remove``).
            Checkpoints written during fitting keep the masks either way.
        print_table: print the per-layer table at the end of fitting (rank zero).

    Raises:
        ValueError: for an invalid argument (naming it), or at ``setup`` for a ``layers`` entry that matches no layer.

    Example:
        >>> greg = GReg(variant=1, sparsity=0.9, delta=0.25, update_interval=2, hold_steps=3)
        >>> greg.schedule.prune_step
        11
        >>> GReg(sparsity=1.0)
        Traceback (most recent call last):
        ...
        ValueError: Invalid sparsity: 1.0; expected a finite real number >= 0.0 and < 1.0
    """

    def __init__(
        self,
        variant: int = 1,
        sparsity: float = 0.9,
        granularity: Literal["weight", "filter"] = "weight",
        delta: float = 1e-2,
        update_interval: int = 2,
        ceiling: float = 1.0,
        hold_steps: int = 100,
        pick_delta: float = 1e-4,
        pick_ceiling: float = 1e-2,
        layers: LayerSpec = None,
        warmup_steps: int = 0,
        make_permanent: bool = False,
        print_table: bool = True,
    ) -> None:
        check_int("variant", variant, low=1, high=2)
        check_real("sparsity", sparsity, low=0.0, high=1.0, high_open=True)
        check_choice("granularity", granularity, ("weight", "filter"))
        check_real("delta", delta, low=0.0, low_open=True)
        check_int("update_interval", update_interval, low=1)
        check_real("ceiling", ceiling, low=0.0, low_open=True)
        check_int("hold_steps", hold_steps, low=0)
        check_real("pick_delta", pick_delta, low=0.0, low_open=True)
        pick_high = float(ceiling) if variant == 2 else None
        check_real("pick_ceiling", pick_ceiling, low=0.0, high=pick_high, low_open=True, high_open=True)
        check_int("warmup_steps", warmup_steps, low=0)
        check_bool("make_permanent", make_permanent)
        check_bool("print_table", print_table)
        self.warmup_steps = warmup_steps
        self.layers = check_layers(layers)
        self.variant = variant
        self.sparsity = float(sparsity)
        self.granularity = granularity
        self.schedule = GRegSchedule(
            variant, float(delta), update_interval, float(ceiling), hold_steps, float(pick_delta), float(pick_ceiling)
        )
        self.make_permanent_at_end = make_permanent
        self.print_table = print_table
        # state (saved in checkpoints)
        self.start_step: int | None = None
        self.phase: Phase | None = None
        self.penalty = 0.0
        self.picked: dict[str, Tensor] = {}  # bool masks on CPU by target key, True = picked for pruning
        self.picked_at_step: int | None = None
        self.pruned_at_step: int | None = None
        # per fit
        self._layers = PrunedLayers(self.layers, granularity)
        self._picked_cast: dict[str, Tensor] = {}  # picked masks in each parameter's dtype and device
        self._in_optimizer: dict[int, set[int]] = {}  # ids of each optimizer's parameters, by optimizer id

    @property
    @override
    def state_key(self) -> str:
        return self._generate_state_key(
            variant=self.variant, sparsity=self.sparsity, granularity=self.granularity, layers=layer_names(self.layers)
        )

    @property
    def pruned(self) -> bool:
        """Whether the masks have been applied."""
        return self.pruned_at_step is not None

    @property
    def name(self) -> str:
        """``"GReg-1"`` or ``"GReg-2"``."""
        return f"GReg-{self.variant}"

    # ------------------------------------------------------------------------------------------------------------------
    # hooks

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._layers.setup(pl_module)  # the load hooks go in before the checkpoint's module state loads

    @override
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._picked_cast = {}
        self._in_optimizer = {}
        if self.pruned and not self._layers.all_pruned():
            self._apply_masks()  # callback state says pruned but the module's masks were not restored
        self._layers.attach(trainer.optimizers)
        if not self.pruned:
            start = self.start_step if self.start_step is not None else trainer.global_step
            prune_at = start + self.warmup_steps + self.schedule.prune_step
            total = trainer.estimated_stepping_batches
            if total != float("inf") and prune_at >= total:
                rank_zero_warn(
                    f"{self.name} will never prune: it prunes at optimizer step {prune_at} "
                    f"but training stops after {int(total)} steps (max_steps={trainer.max_steps}, "
                    f"max_epochs={trainer.max_epochs})."
                )

    @override
    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self.start_step is None:
            self.start_step = trainer.global_step
        step = trainer.global_step - self.start_step - self.warmup_steps
        if self.pruned and trainer.global_step != self.pruned_at_step:
            # After the prune step, and in a second `fit` to fine-tune more: the masks hold, the schedule is over.
            phase, self.penalty = Phase.FINE_TUNE, 0.0
        elif trainer.global_step < self.start_step:
            raise RuntimeError(
                f"{self.name} started at optimizer step {self.start_step} but training is at step "
                f"{trainer.global_step}, before it (a new Trainer?): use a new {self.name} for a new run, or resume "
                "the old one with `ckpt_path`."
            )
        elif step < 0:
            phase, self.penalty = Phase.WARM_UP, 0.0
        else:
            phase = self.schedule.phase_at(step)
            if not self.picked and (phase != Phase.PICK):
                self._pick(trainer.global_step)
            if phase >= Phase.PRUNE and not self.pruned:
                self._apply_masks()
                self.pruned_at_step = trainer.global_step
            self.penalty = self.schedule.lambda_at(step)
        if phase != self.phase:
            self._announce(phase, trainer.global_step)
        self.phase = phase
        pl_module.log("greg/phase", float(phase), prog_bar=True, on_step=True, on_epoch=False)
        pl_module.log("greg/lambda", self.penalty, on_step=True, on_epoch=False)

    @override
    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        if not self.penalty or self.phase is None or self.phase >= Phase.PRUNE:
            return
        in_optimizer = self._in_optimizer.get(id(optimizer))
        if in_optimizer is None:
            in_optimizer = {id(p) for group in optimizer.param_groups for p in group["params"]}
            self._in_optimizer[id(optimizer)] = in_optimizer
        with torch.no_grad():
            for target in self._layers.targets:
                param = trainable(target.module, target.name)
                if id(param) not in in_optimizer:
                    continue
                if self.phase == Phase.PICK and target.name != "weight":
                    continue  # GReg-2's uniform penalty is on the weights; filter biases follow the re-pick
                if param.grad is None:
                    param.grad = torch.zeros_like(param)
                if self.phase == Phase.PICK:  # GReg-2's uniform penalty on all weights
                    param.grad.add_(param, alpha=self.penalty)
                else:
                    param.grad.addcmul_(param, self._picked_like(target.key, param), value=self.penalty)

    @override
    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.make_permanent_at_end and self.pruned:
            self.make_permanent(pl_module)
        if self.print_table:
            self._print_table(pl_module)

    @override
    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._layers.teardown()

    # ------------------------------------------------------------------------------------------------------------------
    # state

    @override
    def state_dict(self) -> dict[str, Any]:
        return {
            "start_step": self.start_step,
            "phase": None if self.phase is None else int(self.phase),
            "lambda": self.penalty,
            "picked": {key: mask.detach().cpu().clone() for key, mask in self.picked.items()},
            "picked_at_step": self.picked_at_step,
            "pruned_at_step": self.pruned_at_step,
        }

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.start_step = state_dict.get("start_step")
        phase = state_dict.get("phase")
        self.phase = None if phase is None else Phase(phase)
        self.penalty = float(state_dict.get("lambda", 0.0))
        self.picked = {key: mask.cpu().bool() for key, mask in (state_dict.get("picked") or {}).items()}
        self.picked_at_step = state_dict.get("picked_at_step")
        self.pruned_at_step = state_dict.get("pruned_at_step")
        self._picked_cast = {}

    # ------------------------------------------------------------------------------------------------------------------
    # public helpers

    def report(self, module: nn.Module | None = None) -> list[PruningRow]:
        """Per pruned layer: the filters (output channels) removed and the zero weights, see :func:`pruning_report`.

        Args:
            module: the model; default: the one of the last ``fit`` (its layers as resolved at ``setup``).
        """
        return self._layers.report(module, owner=type(self).__name__)

    def make_permanent(self, module: nn.Module) -> list[str]:
        """Bake every :mod:`torch.nn.utils.prune` mask of ``module`` into its weights; returns the tensors' names.

        See :func:`~lightning_grda.pruning.masks.make_pruning_permanent`. Do it after training: afterwards nothing
        holds the pruned weights at zero.
        """
        return make_pruning_permanent(module)

    # ------------------------------------------------------------------------------------------------------------------
    # internals

    def _weight_keys(self) -> list[str]:
        return [t.key for t in self._layers.targets if t.name == "weight"]

    def _picked_like(self, key: str, param: Tensor) -> Tensor:
        cast = self._picked_cast.get(key)
        if cast is None or cast.device != param.device or cast.dtype != param.dtype:
            cast = self.picked[key].to(device=param.device, dtype=param.dtype)
            self._picked_cast[key] = cast
        return cast

    @torch.no_grad()
    def _pick(self, global_step: int) -> None:
        """Pick, per layer, the weights (or filters) with the smallest magnitude (L1), from the current weights."""
        picked: dict[str, Tensor] = {}
        for target in self._layers.targets:
            if target.name != "weight":
                continue
            w = trainable(target.module, "weight").detach()
            if is_pruned(target.module, "weight"):
                w = w * target.module.weight_mask
            groups = w.reshape(w.shape[0], -1).abs().sum(dim=1) if self.granularity == "filter" else w.abs().flatten()
            k = round(self.sparsity * groups.numel())
            chosen = torch.zeros(groups.numel(), dtype=torch.bool, device=w.device)
            chosen[torch.argsort(groups, stable=True)[:k]] = True  # stable: ties go to the lower index on every rank
            if self.granularity == "filter":
                picked[target.key] = chosen.view(-1, *([1] * (w.dim() - 1))).expand_as(w).contiguous().cpu()
                bias_key = target.key[: -len("weight")] + "bias"
                if any(t.key == bias_key for t in self._layers.targets):
                    picked[bias_key] = chosen.cpu().clone()
            else:
                picked[target.key] = chosen.view_as(w).cpu()
        self.picked = picked
        self._picked_cast = {}
        self.picked_at_step = global_step
        n = sum(int(m.sum()) for k, m in picked.items() if k.endswith(".weight"))
        total = sum(m.numel() for k, m in picked.items() if k.endswith(".weight"))
        unit = "filters' weights" if self.granularity == "filter" else "weights"
        rank_zero_info(
            f"{self.name}: step {global_step}: picked {n:,} of {total:,} {unit} ({n / max(total, 1):.1%}) "
            f"in {len(self._weight_keys())} layers by magnitude"
        )

    def _apply_masks(self) -> None:
        for target in self._layers.targets:
            apply_mask(target.module, target.name, ~self.picked[target.key])
        self._picked_cast = {}

    def _announce(self, phase: Phase, global_step: int) -> None:
        start = (self.start_step or 0) + self.warmup_steps
        what = self.schedule.describe(phase, start, self.granularity, self.sparsity)
        rank_zero_info(f"{self.name}: step {global_step}: phase {phase.name.lower().replace('_', '-')}: {what}")

    def _print_table(self, pl_module: pl.LightningModule) -> None:
        self._layers.print_table(
            f"{self.name} ({self.granularity}, sparsity {self.sparsity:g} per layer)", pl_module.trainer
        )
