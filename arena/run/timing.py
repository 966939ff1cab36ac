"""The timing loop and the peak-memory readings used inside a cell's child process."""

from __future__ import annotations

import resource
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from arena.frameworks.contract import Step
from arena.specs.schema import Timing

SAMPLER_THREAD = "arena-peak-rss"
CLEAR_REFS, STATUS = Path("/proc/self/clear_refs"), Path("/proc/self/status")


def time_call(step: Step, last: list[Any]) -> float:
    """Call the step once and return its time (ms); `last` holds the call's value, and only it.

    The previous call's value is dropped inside the clock, before the call, as a training loop that
    consumes each step's outputs does (and torch, whose step frees the last `.grad` inside it): a step
    that returns new gradients on every call (JAX, TensorFlow, MLX, a TinyJit's first call and its
    capture) would otherwise run beside the last set, 3.4 GB for SD 1.5 (tests/run/test_timing.py). So
    every framework's peak counts one set of outputs, and every framework pays for freeing the last.
    """
    start = time.perf_counter_ns()
    last.clear()
    last.append(step.run())
    return (time.perf_counter_ns() - start) / 1e6


@dataclass
class Measured:
    samples_ms: list[float]  # the timed calls
    warmup_ms: list[float]  # the untimed warm-up calls before them (at least one)
    problems: list[str]  # what the step's watch reported over the timed calls


def measure(step: Step, timing: Timing, first_call_ms: float, memory: PeakRss, last: list[Any]) -> Measured:
    """Warm up, then time calls until both min_reps and min_seconds are met (capped by max_reps), within
    the `max_seconds` budget: a call starts only if, as long as the last one, it ends within the budget.
    The first warm-up call and the first timed call run whatever the budget says.

    The caller's first call is not a warm-up: it is the cold start (tracing, compilation, first
    allocations), reported as such in `first_call_ms`. The call after it is the first to run on what
    that one set up (compiled code, allocator pools, caches, thread pools) and can still carry one-off
    costs; timed, it could be the only sample under the budget (MLX's SD UNet cell had one timed call
    and no warm-up). So one untimed call always comes between the two.

    `last` holds the last call's value (the first call's on entry, see `time_call`); `memory` is read
    around the warm-ups and after each timed call, outside the clock (see `PeakRss`). `Step.run`
    synchronises with the device itself, so each sample is a complete call.
    """
    started, last_s = time.perf_counter(), first_call_ms / 1e3

    def affordable() -> bool:
        return time.perf_counter() + last_s <= started + timing.max_seconds

    warmup_ms: list[float] = []
    with memory.sampling():
        while not warmup_ms or (len(warmup_ms) < timing.warmup and affordable()):
            warmup_ms.append(time_call(step, last))
            last_s = warmup_ms[-1] / 1e3
    problems = step.watch()
    samples: list[float] = []
    timed_from = time.perf_counter()

    def more_wanted() -> bool:
        return len(samples) < timing.max_reps and (len(samples) < timing.min_reps or time.perf_counter() - timed_from < timing.min_seconds)

    while not samples or (more_wanted() and affordable()):
        samples.append(time_call(step, last))
        memory.read()
        last_s = samples[-1] / 1e3
    return Measured(samples, warmup_ms, problems())


class PeakRss:
    """The peak resident memory of this process over one phase of a cell (`peak`, bytes): the load and
    build, or one workload from the making of its step to its last call.

    Exact where the kernel lets a process reset its high-water mark (Linux: writing 5 to
    /proc/self/clear_refs sets VmHWM to the current resident size): the mark is reset when the phase
    starts and read after each call, outside the clock, so no peak is missed and no thread runs beside
    the timed calls. Elsewhere (macOS) a thread samples the resident size every 5 ms, but only around
    untimed calls (`sampling()`: the step's making, the first call, the warm-ups), and a timed call gets
    one reading after it: on the 2-core CPU machine the thread used 1.8 % of one core and each wake-up
    preempts one of the cell's two compute threads mid-call (A/B timings could not bound the slowdown
    under 1 %). Sampled peaks miss a spike between two readings; `method` says which a result has.
    """

    def __init__(self, interval_s: float = 0.005, exact: bool = True):
        self.interval_s, self.peak = interval_s, 0
        self.exact = exact and reset_high_water()
        self._process = psutil.Process()

    @property
    def method(self) -> str:
        return "exact: the kernel's high-water mark (VmHWM), reset per phase" if self.exact else f"sampled every {self.interval_s * 1e3:g} ms around untimed calls, read after timed ones"

    def read(self) -> None:
        self.peak = max(self.peak, high_water_bytes() if self.exact else self._process.memory_info().rss)

    @contextmanager
    def sampling(self) -> Iterator[None]:
        """Cover the block: read at its end where the mark is exact, else every `interval_s` in a thread."""
        if self.exact:
            yield
            self.read()
            return
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


_peak_before_resets = 0  # the process's high-water mark before the last reset of it, in bytes


def clear_high_water() -> bool:
    """Set the kernel's high-water mark of this process to its current resident size (Linux 4.0+);
    False where there is no such control."""
    try:
        CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def reset_high_water() -> bool:
    """Start a phase's exact peak (`clear_high_water`), keeping the mark reached so far for the whole
    process's peak: the reset also lowers what getrusage reports."""
    global _peak_before_resets
    _peak_before_resets = process_peak_rss_bytes()
    return clear_high_water()


def high_water_bytes() -> int:
    """The kernel's high-water mark of this process since its last reset (VmHWM, bytes; Linux)."""
    for line in STATUS.read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise OSError(f"{STATUS} has no VmHWM line")


def process_peak_rss_bytes() -> int:
    """The peak resident size of this process over its life (bytes; Linux reports KiB, macOS bytes),
    phases' resets included."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return max(peak if sys.platform == "darwin" else peak * 1024, _peak_before_resets)
