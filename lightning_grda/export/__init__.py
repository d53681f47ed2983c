"""After training: ship the pruned model.

:func:`save_sparse` / :func:`load_sparse` write and read the compact, pickle-free sparse file;
:func:`bake_masks` turns a pruner's ``_orig``/``_mask`` pairs into plain weights.
"""

from lightning_grda.export.bake import bake_masks
from lightning_grda.export.sparse_file import FORMAT, SparseFileReport, TensorRow, load_sparse, save_sparse
from lightning_grda.export.thin import ThinReport, thin

__all__ = ["FORMAT", "SparseFileReport", "TensorRow", "ThinReport", "bake_masks", "load_sparse", "save_sparse", "thin"]
