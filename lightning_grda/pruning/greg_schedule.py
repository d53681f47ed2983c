"""GReg's penalty schedule: which phase each optimizer step is in and what penalty it adds, as pure functions.

Paper: Huan Wang, Can Qin, Yulun Zhang, Yun Fu. *Neural Pruning via Growing Regularization*. ICLR 2021.
arXiv:2012.09243. The callback that follows this schedule is :class:`~lightning_grda.pruning.greg.GReg`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum

__all__ = ["GRegSchedule", "Phase"]


class Phase(IntEnum):
    """The phases of GReg, as logged under ``greg/phase``."""

    WARM_UP = -1  #: ``warmup_steps`` of plain training before the schedule starts: no pick, no penalty
    PICK = 0  #: GReg-2 only: a uniform penalty grows on all weights; at its end the weights are re-picked by magnitude
    GROW = 1  #: the penalty on the picked weights grows by ``delta`` every ``update_interval`` steps to ``ceiling``
    HOLD = 2  #: the penalty stays at ``ceiling`` for ``hold_steps`` steps
    PRUNE = 3  #: the one step at whose start the picked weights are masked to zero
    FINE_TUNE = 4  #: no penalty; the masks hold for the rest of training


def _increments(span: float, delta: float) -> int:
    """The number of ``delta`` increments that take a penalty from 0 to ``span`` (at least 1)."""
    q = span / delta
    n = round(q)
    return max(1, n if math.isclose(q, n, rel_tol=1e-9) else math.ceil(q))


@dataclass(frozen=True)
class GRegSchedule:
    """GReg's penalty schedule as a pure function of the step ``s`` (optimizer steps since GReg started, from 0).

    The penalty factor ``lambda(s)`` that step ``s`` adds to the gradient (``grad += lambda(s) * w``):

    * GReg-1: ``GROW`` for the first ``grow_steps = ceil(ceiling / delta) * update_interval`` steps, with
      ``lambda(s) = min(ceiling, delta * (s // update_interval + 1))`` on the picked weights (the first increment
      is taken at step 0, as in the paper's ``if i % K_u == 0: lambda += delta``); then ``HOLD``: ``ceiling`` for
      ``hold_steps`` steps; then ``PRUNE`` at step ``prune_step`` and ``FINE_TUNE`` after it, with no penalty.
    * GReg-2: first ``PICK`` for ``pick_steps = ceil(pick_ceiling / pick_delta) * update_interval`` steps, with
      ``lambda(s) = min(pick_ceiling, pick_delta * (s // update_interval + 1))`` on **all** weights of each layer;
      then, on the weights re-picked by magnitude, ``GROW`` continues from ``pick_ceiling``:
      ``lambda = min(ceiling, pick_ceiling + delta * ((s - pick_steps) // update_interval + 1))`` for
      ``ceil((ceiling - pick_ceiling) / delta) * update_interval`` steps (the kept weights get no penalty); then
      ``HOLD``, ``PRUNE`` and ``FINE_TUNE`` as GReg-1.

    Args:
        variant: 1 or 2.
        delta: the increment of the penalty on the picked weights.
        update_interval: ``K_u``, steps between increments.
        ceiling: the penalty at which growing stops.
        hold_steps: steps at ``ceiling`` before pruning.
        pick_delta: GReg-2's increment of the uniform penalty.
        pick_ceiling: GReg-2's uniform penalty at which the weights are re-picked.

    Example:
        >>> s = GRegSchedule(variant=1, delta=0.25, update_interval=2, ceiling=1.0, hold_steps=3)
        >>> s.grow_steps, s.prune_step
        (8, 11)
        >>> [s.lambda_at(i) for i in range(13)]
        [0.25, 0.25, 0.5, 0.5, 0.75, 0.75, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0]
        >>> [int(s.phase_at(i)) for i in range(13)]
        [1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 3, 4]
    """

    variant: int = 1
    delta: float = 1e-2
    update_interval: int = 2
    ceiling: float = 1.0
    hold_steps: int = 100
    pick_delta: float = 1e-4
    pick_ceiling: float = 1e-2

    @property
    def pick_steps(self) -> int:
        """Steps of the ``PICK`` phase (0 for GReg-1)."""
        if self.variant != 2:
            return 0
        return _increments(self.pick_ceiling, self.pick_delta) * self.update_interval

    @property
    def grow_base(self) -> float:
        """The penalty ``GROW`` starts from: 0 for GReg-1, ``pick_ceiling`` for GReg-2."""
        return self.pick_ceiling if self.variant == 2 else 0.0

    @property
    def grow_steps(self) -> int:
        """Steps of the ``GROW`` phase."""
        return _increments(self.ceiling - self.grow_base, self.delta) * self.update_interval

    @property
    def hold_start(self) -> int:
        """The first step of the ``HOLD`` phase."""
        return self.pick_steps + self.grow_steps

    @property
    def prune_step(self) -> int:
        """The step at whose start the masks are applied."""
        return self.hold_start + self.hold_steps

    def phase_at(self, step: int) -> Phase:
        """The phase of step ``step``."""
        if step < self.pick_steps:
            return Phase.PICK
        if step < self.hold_start:
            return Phase.GROW
        if step < self.prune_step:
            return Phase.HOLD
        return Phase.PRUNE if step == self.prune_step else Phase.FINE_TUNE

    def lambda_at(self, step: int) -> float:
        """The penalty factor of step ``step`` (on all weights in ``PICK``, on the picked ones in ``GROW``/``HOLD``)."""
        phase = self.phase_at(step)
        if phase == Phase.PICK:
            return min(self.pick_ceiling, self.pick_delta * (step // self.update_interval + 1))
        if phase == Phase.GROW:
            k = (step - self.pick_steps) // self.update_interval + 1
            return min(self.ceiling, self.grow_base + self.delta * k)
        return self.ceiling if phase == Phase.HOLD else 0.0

    def describe(self, phase: Phase, start: int, granularity: str, sparsity: float) -> str:
        """What ``phase`` does, in words, for a schedule started at optimizer step ``start`` (after any warm-up).

        Args:
            phase: the phase.
            start: the optimizer step at which the schedule's step 0 is (the warm-up ends there).
            granularity: what is pruned, ``"weight"`` or ``"filter"``.
            sparsity: the fraction pruned per layer.

        Example:
            >>> s = GRegSchedule(delta=0.25, update_interval=2, ceiling=1.0, hold_steps=3)
            >>> s.describe(Phase.GROW, 5, "weight", 0.9)
            'the penalty on the picked weights grows by 0.25 every 2 steps to 1 (until step 13)'
        """
        if phase == Phase.WARM_UP:
            return f"plain training until step {start}, then the weights to prune are picked from the trained ones"
        if phase == Phase.PICK:
            return (
                f"a uniform penalty on all weights grows by {self.pick_delta:g} every {self.update_interval} steps to "
                f"{self.pick_ceiling:g} (until step {start + self.pick_steps})"
            )
        if phase == Phase.GROW:
            return (
                f"the penalty on the picked weights grows by {self.delta:g} every {self.update_interval} steps to "
                f"{self.ceiling:g} (until step {start + self.hold_start})"
            )
        if phase == Phase.HOLD:
            return f"the penalty holds at {self.ceiling:g} for {self.hold_steps} steps"
        if phase == Phase.PRUNE:
            return f"the picked {granularity}s are masked to zero ({sparsity:.1%} per layer)"
        return "fine-tuning with the masks held"
