"""Statistics of timing samples. Pure numpy; medians with a bootstrap confidence interval where there are
enough calls for one, and the caveats a reader must see beside a median that does not have one."""

from __future__ import annotations

import numpy as np

from arena.results.schema import MIN_SAMPLES_FOR_CI, Stats

BOOTSTRAP_RESAMPLES = 1000
# Above this spread the median is flagged: the calls disagreed by more than the gaps between many of
# the frameworks being compared (a busy machine, a garbage collector, a frequency change).
NOISY_CV = 0.10


def summarize(samples_ms: list[float]) -> Stats:
    if not samples_ms:
        raise ValueError("no timing samples")
    x = np.asarray(samples_ms, dtype=np.float64)
    mean = float(x.mean())
    std = float(x.std(ddof=1)) if len(x) > 1 else 0.0
    low_sample = len(x) < MIN_SAMPLES_FOR_CI
    low, high = (None, None) if low_sample else median_ci95(x)
    return Stats(
        n=len(x),
        low_sample=low_sample,
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
    rng = np.random.default_rng(0)
    medians = np.median(rng.choice(x, size=(BOOTSTRAP_RESAMPLES, len(x)), replace=True), axis=1)
    return float(np.percentile(medians, 2.5)), float(np.percentile(medians, 97.5))


def caveats(s: Stats) -> list[str]:
    """What must be read beside the median: too few calls for an interval, a wide spread.

    The count is what stands in for the interval, so a single call says so and a low sample gives n."""
    notes = []
    if s.low_sample:
        notes.append("single call" if s.n == 1 else f"n={s.n}, low sample")
    if s.cv > NOISY_CV:
        notes.append(f"CV {s.cv:.0%}")
    return notes
