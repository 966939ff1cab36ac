"""The timing loop: the policy's repetitions when calls are cheap, and the time budget when they are not."""

from __future__ import annotations

import time

from arena.frameworks.contract import Step
from arena.run.timing import measure
from arena.specs.schema import Timing


def sleeping_step(seconds: float, calls: list[float]) -> Step:
    def run() -> float:
        time.sleep(seconds)
        calls.append(seconds)
        return seconds

    return Step(run=run, fetch=lambda value: {})


def test_cheap_calls_follow_the_policy():
    calls: list[float] = []
    samples, _, problems = measure(sleeping_step(0.001, calls), Timing(warmup=2, min_reps=5, min_seconds=0.0, max_reps=9, max_seconds=60), first_call_ms=1.0)
    assert len(samples) == 5 and len(calls) == 2 + 5 and problems == []
    assert all(s >= 1.0 for s in samples), "each sample is one whole call, in ms"


def test_min_seconds_adds_reps_up_to_max_reps():
    calls: list[float] = []
    samples, _, _ = measure(sleeping_step(0.01, calls), Timing(warmup=0, min_reps=1, min_seconds=10.0, max_reps=4, max_seconds=60), first_call_ms=10.0)
    assert len(samples) == 4


def test_slow_calls_stop_at_the_budget_but_one_call_is_always_timed():
    calls: list[float] = []
    timing = Timing(warmup=2, min_reps=5, min_seconds=0.0, max_reps=10, max_seconds=0.5)
    samples, _, _ = measure(sleeping_step(0.2, calls), timing, first_call_ms=200.0)
    # two warm-up calls fit (0.2 s, 0.4 s), a timed one always runs, the next would end at 0.8 s > 0.5 s
    assert len(calls) == 3 and len(samples) == 1

    calls.clear()
    samples, _, _ = measure(sleeping_step(0.2, calls), timing.model_copy(update={"max_seconds": 0.1}), first_call_ms=200.0)
    assert len(calls) == 1 and len(samples) == 1, "no warm-up fits, the one timed call still runs"
