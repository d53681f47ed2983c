"""Parameters, MACs and CPU latency of thinned models (lightning_grda.export.thin) against the dense ones.

    python benchmarks/bench_thin.py --ckpt lightning_logs/version_0/checkpoints/last.ckpt   # a trained checkpoint
    python benchmarks/bench_thin.py                    # ResNet-20 and VGG16 with 50 % / 90 % lowest-L1 filters zeroed

Latency: torch eager, eval mode, batch 1 and 256, the median of interleaved runs (dense, thinned, dense, ...); with
``--onnx`` also onnxruntime on the exported files.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lightning_grda.export import bake_masks, thin  # noqa: E402
from lightning_grda.export.model_rebuild import rebuild_model  # noqa: E402
from lightning_grda.models.backbones import build_backbone  # noqa: E402
from lightning_grda.weights import read_state_dict  # noqa: E402


def zero_lowest_l1_filters(model, fraction):
    """Zero the lowest-L1 ``fraction`` of the output filters of every conv, with their BN's scale and shift."""
    mods = list(model.modules())
    with torch.no_grad():
        for i, m in enumerate(mods):
            if isinstance(m, nn.Conv2d):
                norms = m.weight.abs().flatten(1).sum(1)
                dead = norms.argsort()[: int(fraction * len(norms))]
                m.weight[dead] = 0
                nxt = mods[i + 1] if i + 1 < len(mods) else None
                if isinstance(nxt, nn.BatchNorm2d):
                    nxt.weight[dead] = 0
                    nxt.bias[dead] = 0
    return model.eval()


def latencies(models, shape, batch, repeats):
    x = torch.randn(batch, *shape)
    times = [[] for _ in models]
    with torch.no_grad():
        for m in models:
            m(x)  # warm-up
        for _ in range(repeats):
            for i, m in enumerate(models):
                start = time.perf_counter()
                m(x)
                times[i].append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def onnx_latencies(models, shape, batch, repeats):
    import onnxruntime as ort

    from lightning_grda.export.onnx import save_onnx

    x = torch.randn(batch, *shape).numpy()
    sessions = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, m in enumerate(models):
            save_onnx(m, torch.randn(1, *shape), Path(tmp) / f"{i}.onnx")
            sessions.append(ort.InferenceSession(str(Path(tmp) / f"{i}.onnx"), providers=["CPUExecutionProvider"]))
    times = [[] for _ in sessions]
    for s in sessions:
        s.run(None, {"input": x})
    for _ in range(repeats):
        for i, s in enumerate(sessions):
            start = time.perf_counter()
            s.run(None, {"input": x})
            times[i].append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def measure(name, dense, shape, repeats, onnx):
    small, report = thin(dense, torch.randn(1, *shape))
    line = (
        f"{name:<22} params {report.params_before:>10,} -> {report.params_after:>10,} "
        f"({report.params_after / report.params_before:.3f}x)  MACs {report.macs_after / report.macs_before:.3f}x"
    )
    for batch in (1, 256):
        d, s = latencies([dense, small], shape, batch, repeats)
        line += f"  eager b{batch} {s / d:.3f}x ({s * 1e3:.2f} vs {d * 1e3:.2f} ms)"
        if onnx:
            d, s = onnx_latencies([dense, small], shape, batch, repeats)
            line += f"  ort b{batch} {s / d:.3f}x"
    print(line, flush=True)


def main(args=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ckpt", action="append", default=[], help="a trained checkpoint of the pack's CLI (repeatable)")
    p.add_argument("--repeats", type=int, default=21)
    p.add_argument("--onnx", action="store_true", help="also time onnxruntime")
    p.add_argument("--cifar", action="store_true", help="also ResNet-20 and VGG16 with lowest-L1 filters zeroed")
    opts = p.parse_args(args)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for ckpt in opts.ckpt:
        model, shape = rebuild_model(ckpt, bake_masks(read_state_dict(ckpt)))
        measure(Path(ckpt).parent.parent.name + "/" + Path(ckpt).name, model, shape, opts.repeats, opts.onnx)
    if opts.cifar or not opts.ckpt:
        for arch in ("resnet20", "vgg16"):
            for fraction in (0.5, 0.9):
                torch.manual_seed(0)
                model = zero_lowest_l1_filters(build_backbone(arch, num_classes=10), fraction)
                measure(f"{arch}@{fraction:.0%} filters", model, (3, 32, 32), opts.repeats, opts.onnx)


if __name__ == "__main__":
    main()
