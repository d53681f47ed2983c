"""A refusal shared by the Lightning integrations: Lightning's FSDP1 strategy, which they would get wrong."""

from __future__ import annotations

from typing import Any

from lightning.pytorch.strategies import FSDPStrategy

__all__ = ["refuse_fsdp1"]


def refuse_fsdp1(trainer: Any, who: str, why: str) -> None:
    """Raise if ``trainer`` runs Lightning's ``FSDPStrategy`` (FSDP1).

    With ``use_orig_params=True`` (Lightning's default) FSDP1 gives each rank 1-D pieces of its parameters, with no
    public way back to their shapes, so what depends on shapes or on whole tensors would be silently wrong. FSDP2
    (``fully_shard``, in Lightning's ``ModelParallelStrategy``) keeps full shapes on its ``DTensor`` parameters and
    is supported.

    Args:
        trainer: the trainer, or None when the module is not attached to one (nothing to check).
        who: what refuses, for the message.
        why: what would go wrong, for the message.

    Raises:
        ValueError: the trainer's strategy is an ``FSDPStrategy``.
    """
    strategy = getattr(trainer, "strategy", None)
    if isinstance(strategy, FSDPStrategy):
        raise ValueError(
            f"Invalid strategy: {type(strategy).__name__}. {who} does not support Lightning's FSDP1 strategy: it "
            f"flattens each rank's parameters into 1-D pieces, so {why}. Use FSDP2 instead: "
            "`ModelParallelStrategy` with `torch.distributed.fsdp.fully_shard` in your `configure_model` (README, "
            "'Sharded training')."
        )
