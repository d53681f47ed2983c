"""After training: ship the pruned model.

:func:`save_sparse` / :func:`load_sparse` write and read the compact, pickle-free sparse file;
:func:`bake_masks` turns a pruner's ``_orig``/``_mask`` pairs into plain weights; :func:`thin` removes dead
channels; :func:`save_onnx` and :func:`save_pt2` write a network as a file that runs without this pack.
"""

from lightning_grda.export.bake import bake_masks
from lightning_grda.export.onnx import save_onnx
from lightning_grda.export.pt2 import save_pt2
from lightning_grda.export.sparse_file import FORMAT, SparseFileReport, TensorRow, load_sparse, save_sparse
from lightning_grda.export.thin import ThinReport, thin

__all__ = [
    "FORMAT",
    "SparseFileReport",
    "TensorRow",
    "ThinReport",
    "bake_masks",
    "load_sparse",
    "save_onnx",
    "save_pt2",
    "save_sparse",
    "thin",
]
