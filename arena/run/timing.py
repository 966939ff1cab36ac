"""The timing loop and the memory sampler used inside a cell's child process."""

from __future__ import annotations

import resource
import sys
import threading
import time
from typing import Any

import psutil

from arena.frameworks.contract import Step
from arena.specs.schema import Timing


def time_call(step: Step) -> tuple[float, Any]:
    start = time.perf_counter_ns()
    value = step.run()
    return (time.perf_counter_ns() - start) / 1e6, value


def measure(step: Step, timing: Timing, first_call_ms: float) -> tuple[list[float], Any, list[str]]:
    """Warm up, then time calls until both min_reps and min_seconds are met (capped by max_reps), within
    the `max_seconds` budget: a call starts only if, as long as the last one, it ends within the budget
    (the first timed call always runs).

    Returns the samples in ms, the last call's value and the problems the step's watch reported.
    `Step.run` synchronises with the device itself, so each sample is a complete call.
    """
    started, last_s = time.perf_counter(), first_call_ms / 1e3

    def affordable() -> bool:
        return time.perf_counter() + last_s <= started + timing.max_seconds

    value = None
    for _ in range(timing.warmup):
        if not affordable():
            break
        elapsed_ms, value = time_call(step)
        last_s = elapsed_ms / 1e3
    problems = step.watch()
    samples: list[float] = []
    timed_from = time.perf_counter()
    while len(samples) < timing.max_reps and (len(samples) < timing.min_reps or time.perf_counter() - timed_from < timing.min_seconds):
        if samples and not affordable():
            break
        elapsed_ms, value = time_call(step)
        samples.append(elapsed_ms)
        last_s = elapsed_ms / 1e3
    return samples, value, problems()


class PeakRss:
    """Samples this process's resident memory every few ms; `peak` is the maximum seen."""

    def __init__(self, interval_s: float = 0.005):
        self.interval_s, self.peak = interval_s, 0
        self._process, self._stop = psutil.Process(), threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> PeakRss:
        self.peak = self._process.memory_info().rss
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._process.memory_info().rss)

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.peak = max(self.peak, self._process.memory_info().rss)


def process_peak_rss_bytes() -> int:
    """The kernel's high-water mark of this process (bytes; Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024
