"""End-to-end training-step time with GRDA against SGD: same model, same data, one process.

Run: ``python benchmarks/bench_training.py [--repeats 40] [--compiled]``

For each model (the digits CNN on 8x8 digits at batch 64, and the CIFAR ResNet-20 at batch 128 on 32x32 images),
two identical copies are trained side by side, one with ``GRDA(lr=0.1, c=0.005, mu=0.55)`` and one with
``torch.optim.SGD(lr=0.1)`` (the paper's baseline: no momentum). Each timed step is a whole training step: zero
the gradients, forward, cross-entropy, backward, optimizer step. The two are interleaved in a shuffled order every
round, so machine noise hits both alike, and the script prints the ratio of the median step times.
Target (issue #4, on CPU): <= 1.02.

``--compiled``: the same with ``torch.compile(model)`` and ``torch.compile(optimizer.step)`` for both (GRDA with
``nonfinite="ignore"``, its non-finite check being a graph break under compile), after a warm-up that compiles.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import torch

from lightning_grda import GRDA
from lightning_grda.models import build_backbone

SETUPS = {
    "digits_cnn": {"shape": (1, 8, 8), "batch": 64},
    "resnet20": {"shape": (3, 32, 32), "batch": 128},
}


def bench(name: str, repeats: int, compiled: bool = False) -> dict[str, float]:
    setup = SETUPS[name]
    torch.manual_seed(0)
    base = build_backbone(name, num_classes=10, in_channels=setup["shape"][0])
    models = {"SGD": base, "GRDA": build_backbone(name, num_classes=10, in_channels=setup["shape"][0])}
    models["GRDA"].load_state_dict(base.state_dict())
    opts = {
        "SGD": torch.optim.SGD(models["SGD"].parameters(), lr=0.1),
        "GRDA": GRDA(
            models["GRDA"].parameters(), lr=0.1, c=0.005, mu=0.55, nonfinite="ignore" if compiled else "raise"
        ),
    }
    forwards = {kind: torch.compile(m) if compiled else m for kind, m in models.items()}
    steps = {kind: torch.compile(o.step) if compiled else o.step for kind, o in opts.items()}
    x = torch.randn(setup["batch"], *setup["shape"])
    y = torch.randint(0, 10, (setup["batch"],))

    def step(kind: str) -> None:
        opts[kind].zero_grad()
        torch.nn.functional.cross_entropy(forwards[kind](x), y).backward()
        steps[kind]()

    for kind in models:  # warm-up
        for _ in range(3):
            step(kind)
    times = {kind: [] for kind in models}
    order = list(models)
    for _ in range(repeats):
        random.shuffle(order)
        for kind in order:
            t0 = time.perf_counter()
            step(kind)
            times[kind].append(time.perf_counter() - t0)
    return {kind: statistics.median(ts) for kind, ts in times.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--models", nargs="+", default=list(SETUPS), choices=list(SETUPS))
    parser.add_argument("--compiled", action="store_true", help="torch.compile the model and the optimizer step")
    args = parser.parse_args(argv)
    print(
        f"torch {torch.__version__}, CPU threads {torch.get_num_threads()}, {args.repeats} interleaved steps each"
        + (", compiled model and step" if args.compiled else "")
    )
    print(f"{'model':<12} {'SGD ms':>8} {'GRDA ms':>8} {'GRDA / SGD':>11}")
    for name in args.models:
        med = bench(name, args.repeats, args.compiled)
        print(f"{name:<12} {1e3 * med['SGD']:>8.2f} {1e3 * med['GRDA']:>8.2f} {med['GRDA'] / med['SGD']:>11.3f}")


if __name__ == "__main__":
    main()
