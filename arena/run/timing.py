"""The timing loop and the memory sampler used inside a cell's child process."""

from __future__ import annotations

import resource
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psutil

from arena.frameworks.contract import Step
from arena.specs.schema import Timing

SAMPLER_THREAD = "arena-peak-rss"


def time_call(step: Step) -> tuple[float, Any]:
    start = time.perf_counter_ns()
    value = step.run()
    return (time.perf_counter_ns() - start) / 1e6, value


@dataclass
class Measured:
    samples_ms: list[float]  # the timed calls
    warmup_ms: list[float]  # the untimed warm-up calls before them (at least one)
    value: Any  # the last call's value
    problems: list[str]  # what the step's watch reported over the timed calls


def measure(step: Step, timing: Timing, first_call_ms: float, memory: PeakRss) -> Measured:
    """Warm up, then time calls until both min_reps and min_seconds are met (capped by max_reps), within
    the `max_seconds` budget: a call starts only if, as long as the last one, it ends within the budget.
    The first warm-up call and the first timed call run whatever the budget says.

    The caller's first call is not a warm-up: it is the cold start (tracing, compilation, first
    allocations), reported as such in `first_call_ms`. The call after it is the first to run on what
    that one set up (compiled code, allocator pools, caches, thread pools) and can still carry one-off
    costs; timed, it could be the only sample under the budget (MLX's SD UNet cell had one timed call
    and no warm-up). So one untimed call always comes between the two.

    `memory` samples the warm-up calls and reads once after each timed call (see `PeakRss`).
    `Step.run` synchronises with the device itself, so each sample is a complete call.
    """
    started, last_s = time.perf_counter(), first_call_ms / 1e3

    def affordable() -> bool:
        return time.perf_counter() + last_s <= started + timing.max_seconds

    warmup_ms: list[float] = []
    with memory.sampling():
        while not warmup_ms or (len(warmup_ms) < timing.warmup and affordable()):
            elapsed_ms, _ = time_call(step)
            warmup_ms.append(elapsed_ms)
            last_s = elapsed_ms / 1e3
    problems = step.watch()
    samples: list[float] = []
    timed_from = time.perf_counter()

    def more_wanted() -> bool:
        return len(samples) < timing.max_reps and (len(samples) < timing.min_reps or time.perf_counter() - timed_from < timing.min_seconds)

    while not samples or (more_wanted() and affordable()):
        elapsed_ms, value = time_call(step)
        memory.read()
        samples.append(elapsed_ms)
        last_s = elapsed_ms / 1e3
    return Measured(samples, warmup_ms, value, problems())


class PeakRss:
    """The peak resident memory of this process over one workload's calls (`peak`, bytes).

    A thread reads it every 5 ms, but only around untimed calls (`sampling()`: the first call and the
    warm-ups); a timed call gets one reading after it, outside the clock. Why: on the 2-core CPU
    machine the thread used 1.8 % of one core (~150 µs of CPU per wake-up, of which the psutil read is
    20 µs), close to 1 % of the machine, and each wake-up preempts one of the cell's two compute
    threads mid-call; A/B timings with and without it (GEMM and small-op eager steps on 2 torch
    threads, the machine shared) could not bound the slowdown under 1 %: median ratios 0.96-1.14,
    interquartile ranges ±15-50 %. Sampling from the parent process would only move those wake-ups to
    another process on the same two cores. Not sampling timed calls loses nothing: each is the same call
    as the warm-ups, allocating the same, the reading after it catches memory that grows from call to
    call, and the kernel's high-water mark of the whole process (`process_peak_rss_bytes`, the result's
    `peak_memory_bytes`) stays the cross-check that misses no peak.
    """

    def __init__(self, interval_s: float = 0.005):
        self.interval_s, self.peak = interval_s, 0
        self._process = psutil.Process()

    def read(self) -> None:
        self.peak = max(self.peak, self._process.memory_info().rss)

    @contextmanager
    def sampling(self) -> Iterator[None]:
        """Read every `interval_s` in a thread while the block runs (and at its start and end)."""
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(self.interval_s):
                self.read()

        thread = threading.Thread(target=sample, name=SAMPLER_THREAD, daemon=True)
        self.read()
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
            self.read()


def process_peak_rss_bytes() -> int:
    """The kernel's high-water mark of this process (bytes; Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024
