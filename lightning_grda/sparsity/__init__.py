"""Counting exact zeros in parameters: pure functions behind :class:`~lightning_grda.callbacks.SparsityMonitor`.

Sparsity here is the paper's measure (Chao et al., *Directional Pruning of Deep Neural Networks*, NeurIPS 2020,
arXiv 2006.09358): the fraction of **exact** zeros over **all** parameters, biases and normalisation parameters
included. ``-0.0`` is a zero; ``nan`` and tiny values are not.

What is counted, for a module:

* every parameter once, even when it is shared between submodules (``Module.named_parameters`` de-duplicates);
* for a module pruned with :mod:`torch.nn.utils.prune`, the *effective* weight ``weight_orig * weight_mask`` (the
  tensor the next forward uses), reported under the user's name ``weight`` rather than ``weight_orig``; the mask
  buffer itself is not a parameter and is not counted;
* buffers (e.g. BatchNorm running statistics) are not parameters and are not counted.

Per layer, :func:`pruning_report` counts what the pruning callbacks' tables show: the zero weights and the output
channels (filters) that are all zero, in the layers chosen as in :mod:`lightning_grda.layers`.

Counting is batched: one reduction per tensor, the per-tensor counts stacked into one tensor, and a single transfer to
the host (one ``.tolist()``) per report, however many parameters there are.

Sharded parameters (``DTensor``, as FSDP2's ``fully_shard`` and Lightning's ``ModelParallelStrategy`` make them)
are counted exactly: each rank counts its own shards, and the counts are summed over the mesh dimensions that shard
them, with one ``all_reduce`` per mesh and set of sharded dimensions. Sizes and shapes are the full tensor's. This
is a collective: with sharded parameters, every rank of the mesh must make the same call.

Modules: :mod:`~lightning_grda.sparsity.counts` (zeros per tensor, sharded or not; the effective parameters),
:mod:`~lightning_grda.sparsity.report` (per parameter and global: :func:`sparsity_report`),
:mod:`~lightning_grda.sparsity.per_layer` (per layer, filters included: :func:`pruning_report`).
"""

from lightning_grda.sparsity.counts import effective, named_effective_parameters, tensor_sparsity, zero_counts
from lightning_grda.sparsity.per_layer import PruningRow, pruning_report, pruning_table, report_rows
from lightning_grda.sparsity.report import (
    SparsityReport,
    SparsityRow,
    global_sparsity,
    parameter_sparsity,
    sparsity_report,
)

__all__ = [
    "PruningRow",
    "SparsityReport",
    "SparsityRow",
    "effective",
    "global_sparsity",
    "named_effective_parameters",
    "parameter_sparsity",
    "pruning_report",
    "pruning_table",
    "report_rows",
    "sparsity_report",
    "tensor_sparsity",
    "zero_counts",
]
