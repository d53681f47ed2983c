"""The gRDA paper's directional claims, measured (Chao et al., *Directional Pruning of Deep Neural Networks*, 2020).

* :func:`hessian_eigenpairs`: the Hessian's top eigenpairs by Lanczos (scipy) on Hessian-vector products;
* :func:`top_eigenspace_share`: the share of ``w_gRDA - w_SGD`` on them (the paper: ~1e-3 on the top 10);
* :func:`train_bezier` / :func:`evaluate_path`: mode connectivity along a quadratic Bezier curve and a line;
* :func:`norm_ratio`: ``||w||_2 / ||w||_1``;
* :func:`diagnose`: all of them for one pair, as ``lightning-grda diagnose`` runs them.
"""

from lightning_grda.diagnostics.connectivity import CurveResult, bezier_point, evaluate_path, line_point, train_bezier
from lightning_grda.diagnostics.hessian import HessianEigen, hessian_eigenpairs, hessian_vector_product
from lightning_grda.diagnostics.norms import norm_ratio
from lightning_grda.diagnostics.plots import plot_all, plot_paths, plot_share
from lightning_grda.diagnostics.projection import top_eigenspace_share
from lightning_grda.diagnostics.report import print_report, report
from lightning_grda.diagnostics.run import diagnose, first_batches, from_config

__all__ = [
    "CurveResult",
    "HessianEigen",
    "bezier_point",
    "diagnose",
    "evaluate_path",
    "first_batches",
    "from_config",
    "hessian_eigenpairs",
    "hessian_vector_product",
    "line_point",
    "norm_ratio",
    "plot_all",
    "plot_paths",
    "plot_share",
    "print_report",
    "report",
    "top_eigenspace_share",
    "train_bezier",
]
