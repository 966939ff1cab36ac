"""The timing loop: the policy's repetitions when calls are cheap, the time budget when they are not, one
call's value held at a time, and peak memory read exactly (Linux) or sampled beside the untimed calls only."""

from __future__ import annotations

import threading
import time
import weakref
from pathlib import Path

import numpy as np
import psutil
import pytest

from arena.frameworks.contract import Step
from arena.run.timing import SAMPLER_THREAD, PeakRss, measure, process_peak_rss_bytes, time_call
from arena.specs.schema import Timing


def sleeping_step(seconds: float, calls: list[float]) -> Step:
    def run() -> float:
        time.sleep(seconds)
        calls.append(seconds)
        return seconds

    return Step(run=run, fetch=lambda value: {})


def test_cheap_calls_follow_the_policy():
    calls: list[float] = []
    measured = measure(sleeping_step(0.001, calls), Timing(warmup=2, min_reps=5, min_seconds=0.0, max_reps=9, max_seconds=60), first_call_ms=1.0, memory=PeakRss(), last=[])
    assert len(measured.warmup_ms) == 2 and len(measured.samples_ms) == 5 and len(calls) == 2 + 5 and measured.problems == []
    assert all(s >= 1.0 for s in measured.samples_ms + measured.warmup_ms), "each sample is one whole call, in ms"


def test_min_seconds_adds_reps_up_to_max_reps():
    calls: list[float] = []
    measured = measure(sleeping_step(0.01, calls), Timing(warmup=1, min_reps=1, min_seconds=10.0, max_reps=4, max_seconds=60), first_call_ms=10.0, memory=PeakRss(), last=[])
    assert len(measured.samples_ms) == 4


def test_slow_calls_stop_at_the_budget_but_one_warmup_and_one_timed_call_always_run():
    calls: list[float] = []
    timing = Timing(warmup=2, min_reps=5, min_seconds=0.0, max_reps=10, max_seconds=0.5)
    measured = measure(sleeping_step(0.2, calls), timing, first_call_ms=200.0, memory=PeakRss(), last=[])
    # two warm-up calls fit (0.2 s, 0.4 s), a timed one always runs, the next would end at 0.8 s > 0.5 s
    assert len(measured.warmup_ms) == 2 and len(measured.samples_ms) == 1 and len(calls) == 3

    calls.clear()
    measured = measure(sleeping_step(0.2, calls), timing.model_copy(update={"max_seconds": 0.1}), first_call_ms=200.0, memory=PeakRss(), last=[])
    # MLX's SD UNet cell: a call longer than the whole budget. The first call (the caller's, compilation
    # included) is no warm-up, so one untimed call still separates it from the one timed call.
    assert len(measured.warmup_ms) == 1 and len(measured.samples_ms) == 1 and len(calls) == 2
    assert measured.warmup_ms[0] >= 200.0, "the warm-up call is recorded with its time"


EXACT = Path("/proc/self/clear_refs").exists()
linux_only = pytest.mark.skipif(not EXACT, reason="the kernel's resettable high-water mark is Linux's; elsewhere peaks are sampled")
FOUR_CALLS = Timing(warmup=2, min_reps=3, min_seconds=0.0, max_reps=3)


def test_memory_is_sampled_beside_the_warmups_and_read_after_each_timed_call():
    """The fallback where the kernel's mark cannot be reset (macOS)."""
    sampler_ran: list[bool] = []
    blocks: list[bytearray] = []

    def run() -> None:
        time.sleep(0.02)  # several 5 ms sampling intervals
        sampler_ran.append(any(t.name == SAMPLER_THREAD for t in threading.enumerate()))
        blocks.append(bytearray(b"x" * 32 * 2**20))  # each call keeps 32 MiB more, touched

    memory = PeakRss(exact=False)
    measured = measure(Step(run=run, fetch=lambda value: {}), FOUR_CALLS, first_call_ms=20.0, memory=memory, last=[])
    assert sampler_ran == [True, True, False, False, False], "no sampler thread beside a timed call"
    assert len(measured.samples_ms) == 3 and memory.method.startswith("sampled")
    assert memory.peak >= psutil.Process().memory_info().rss - 2**20, "the last timed call's 32 MiB are read after it"


@linux_only
def test_an_exact_peak_counts_a_timed_call_s_transient_memory_and_runs_no_thread():
    """A spike inside a timed call, freed before it returns, is between any two samples; the kernel's
    mark keeps it."""
    threads: list[int] = []

    def run() -> None:
        threads.append(threading.active_count())
        if len(threads) == 4:  # the second timed call
            np.ones(2**25)  # 256 MiB, touched, then freed (munmap) before the call returns

    memory = PeakRss()
    assert memory.exact and memory.method.startswith("exact")
    start = psutil.Process().memory_info().rss
    measure(Step(run=run, fetch=lambda value: {}), FOUR_CALLS, first_call_ms=1.0, memory=memory, last=[])
    assert psutil.Process().memory_info().rss < start + 2**27, "the spike was freed"
    assert memory.peak >= start + 2**28 - 2**24, "the timed call's 256 MiB are in the peak"
    assert len(set(threads)) == 1, "no thread started beside any call"


@linux_only
def test_a_phase_s_reset_keeps_the_process_s_peak_whole():
    """Resetting the mark for a phase also lowers getrusage's; the whole process's peak keeps what came before."""
    spike = np.ones(2**25)  # 256 MiB before the phase
    rss_with_spike = psutil.Process().memory_info().rss
    del spike
    memory = PeakRss()
    memory.read()
    assert memory.peak < rss_with_spike - 2**27, "the phase's peak starts after the reset"
    # (the kernel syncs its per-thread RSS counters every few page faults: a reading can lag by ~100 KiB)
    assert process_peak_rss_bytes() >= rss_with_spike - 2**20, "the process's peak still has the 256 MiB"


class Grads:
    """Stands for a call's new set of gradients; `alive` tracks every set not yet freed."""

    def __init__(self, alive: list[weakref.ref], call: int):
        self.call = call
        alive.append(weakref.ref(self))


def test_each_call_starts_with_no_earlier_call_s_value_alive():
    """A step that returns new gradients on every call (JAX, TensorFlow, MLX, a TinyJit's first two
    calls) would otherwise run beside up to three stale sets, the first call's and the last two."""
    alive: list[weakref.ref] = []
    earlier_alive: list[int] = []

    def run() -> Grads:
        earlier_alive.append(sum(ref() is not None for ref in alive))
        return Grads(alive, len(earlier_alive))

    step, last = Step(run=run, fetch=lambda grads: {"call": np.array(grads.call)}), []
    first_ms = time_call(step, last)
    measure(step, FOUR_CALLS, first_ms, PeakRss(), last)
    assert earlier_alive == [0] * 6
    assert len(last) == 1 and step.fetch(last[0])["call"] == 6, "the last call's value is kept for the comparison"


def test_a_spec_cannot_ask_for_no_warmup():
    with pytest.raises(ValueError, match="warmup"):
        Timing(warmup=0)


@linux_only
def test_a_cell_does_not_report_its_parents_peak_memory_as_its_own(run_matrix):
    """Linux hands a process's peak RSS on through exec: a cell started after the runner had held GBs
    (a large model's outputs, judged) reported them as its own peak until the runner reset its mark."""
    held = np.ones(2**28)  # 2 GiB, touched, then freed: the runner's high-water mark stays 2 GiB above its RSS
    del held
    # What a child may still inherit: the runner's current RSS (a test worker that imported frameworks
    # holds more than the arena's own runner does). A tiny ResNet in torch needs well under 1 GiB itself.
    allowed = max(psutil.Process().memory_info().rss, 2**30) + 0.75 * 2**30
    result = run_matrix(["resnet-50"], ["torch"])["resnet-50:torch"]
    assert result.status == "ok", result.reason
    assert result.metrics.peak_memory_bytes < allowed, "the cell's peak includes the runner's freed 2 GiB"
    # ... and each phase has its own exact peak, within the whole process's.
    m = result.metrics
    phases = [m.prepare.peak_rss_bytes] + [getattr(m, w).peak_rss_bytes for w in ("inference", "latency", "training")]
    assert result.settings["peak_rss"].startswith("exact")
    assert all(0 < peak <= m.peak_memory_bytes for peak in phases), (phases, m.peak_memory_bytes)
