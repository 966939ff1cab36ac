"""Statistics of timing samples. Pure numpy; medians with a bootstrap confidence interval."""

from __future__ import annotations

import numpy as np

from arena.results.schema import Stats

BOOTSTRAP_RESAMPLES = 1000


def summarize(samples_ms: list[float]) -> Stats:
    if not samples_ms:
        raise ValueError("no timing samples")
    x = np.asarray(samples_ms, dtype=np.float64)
    mean = float(x.mean())
    std = float(x.std(ddof=1)) if len(x) > 1 else 0.0
    low, high = median_ci95(x)
    return Stats(
        n=len(x),
        median_ms=float(np.median(x)),
        mean_ms=mean,
        std_ms=std,
        p10_ms=float(np.percentile(x, 10)),
        p90_ms=float(np.percentile(x, 90)),
        min_ms=float(x.min()),
        max_ms=float(x.max()),
        cv=std / mean if mean > 0 else 0.0,
        ci95_low_ms=low,
        ci95_high_ms=high,
        samples_ms=[float(v) for v in x],
    )


def median_ci95(x: np.ndarray) -> tuple[float, float]:
    """Percentile bootstrap of the median (seeded, so the same samples give the same interval)."""
    if len(x) == 1:
        return float(x[0]), float(x[0])
    rng = np.random.default_rng(0)
    medians = np.median(rng.choice(x, size=(BOOTSTRAP_RESAMPLES, len(x)), replace=True), axis=1)
    return float(np.percentile(medians, 2.5)), float(np.percentile(medians, 97.5))
