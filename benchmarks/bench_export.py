"""File sizes and save/load times of the compact sparse file (lightning_grda.export.save_sparse).

    python benchmarks/bench_export.py                       # ResNet-50 shapes at 90 % and 95 % sparsity
    python benchmarks/bench_export.py --ckpt path/to.ckpt   # also a trained checkpoint (e.g. the default digits job's)

For each case: the compact file's size against the same weights saved dense with ``safetensors.torch.save_file``
(and against the checkpoint itself when one is given), and the median save and load times against
``save_file``/``load_file``. ResNet-50's weights get uniform random sparsity (every floating tensor), so the ratio's
floor is ``1/32 + (1 - sparsity)``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lightning_grda.export import bake_masks, load_sparse, save_sparse  # noqa: E402
from lightning_grda.weights import read_state_dict  # noqa: E402


def _median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(name, state, folder, repeats, ckpt=None):
    dense_path, sparse_path = folder / f"{name}.dense.safetensors", folder / f"{name}.sparse.safetensors"
    state = {k: v.contiguous().clone() for k, v in state.items()}
    # interleaved: each repeat times the dense and the sparse save back to back
    t_dense_save = _median_time(lambda: save_file(state, dense_path), repeats)
    t_sparse_save = _median_time(lambda: save_sparse(state, sparse_path), repeats)
    t_dense_load = _median_time(lambda: load_file(dense_path), repeats)
    t_sparse_load = _median_time(lambda: load_sparse(sparse_path), repeats)
    report = save_sparse(state, sparse_path)
    dense, sparse = dense_path.stat().st_size, sparse_path.stat().st_size
    line = (
        f"{name:<24} sparsity {report.sparsity:6.2%}  dense {dense / 2**20:8.2f} MiB  "
        f"sparse {sparse / 2**20:8.2f} MiB  "
        f"ratio {sparse / dense:.3f}x  save {t_sparse_save * 1e3:7.1f} ms vs {t_dense_save * 1e3:7.1f} ms  "
        f"load {t_sparse_load * 1e3:7.1f} ms vs {t_dense_load * 1e3:7.1f} ms"
    )
    if ckpt is not None:
        line += (
            f"  (.ckpt {Path(ckpt).stat().st_size / 2**20:.2f} MiB: ratio {sparse / Path(ckpt).stat().st_size:.3f}x)"
        )
    print(line, flush=True)
    return sparse / dense


def random_sparse_resnet50(sparsity, seed=0):
    from torchvision.models import resnet50

    g = torch.Generator().manual_seed(seed)
    state = resnet50().state_dict()
    for v in state.values():
        if v.is_floating_point():
            v[torch.rand(v.shape, generator=g) < sparsity] = 0
    return state


def main(args=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ckpt", action="append", default=[], help="a trained checkpoint to measure (repeatable)")
    p.add_argument("--sparsity", type=float, nargs="*", default=[0.9, 0.95], help="ResNet-50 sparsities")
    p.add_argument("--repeats", type=int, default=5)
    opts = p.parse_args(args)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for ckpt in opts.ckpt:
            measure(Path(ckpt).stem, bake_masks(read_state_dict(ckpt)), folder, opts.repeats, ckpt=ckpt)
        for s in opts.sparsity:
            measure(f"resnet50@{s:.0%}", random_sparse_resnet50(s), folder, opts.repeats)


if __name__ == "__main__":
    main()
