"""A fake trial function for the tune tests: accuracy drops past a limit, no training."""

import math

from lightning_grda.tune import Trial

SGD_ACC = 0.95


def fake(limit: float, *, calls: list[float] | None = None, bad: set[float] = frozenset(), crash_above=math.inf):
    """A trial whose accuracy drops past ``limit``; ``bad`` c values fail although small (non-monotone)."""

    def trial(c: float) -> Trial:
        if calls is not None:
            calls.append(c)
        if c > crash_above:
            raise RuntimeError("loss is nan")
        drop = c > limit or any(math.isclose(c, b) for b in bad)
        return Trial(c, 0.6, 1, SGD_ACC - (0.2 if drop else 0.0), min(1.0, 10 * c))

    return trial
