"""Summary statistics with honest uncertainty: mean and a seeded percentile-bootstrap confidence interval."""

from __future__ import annotations

import numpy as np


def bootstrap_ci(values, statistic=np.mean, *, resamples: int = 1000, level: float = 0.95,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic`` over ``values`` (1-D), deterministic for a seed.

    Returns ``(nan, nan)`` for fewer than two values, where no interval can be estimated.
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(resamples, x.size))
    if statistic is np.mean:
        stats = x[idx].mean(axis=1)
    else:
        stats = np.array([statistic(x[i]) for i in idx])
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(stats, [alpha, 1.0 - alpha])
    return float(low), float(high)


def mean_with_ci(values, *, seed: int = 0) -> tuple[float, float, float, int]:
    """``(mean, ci_low, ci_high, n)`` of per-sample values."""
    x = np.asarray(values, dtype=np.float64).ravel()
    low, high = bootstrap_ci(x, seed=seed)
    return float(x.mean()), low, high, int(x.size)
